/* Test builds only (UCSPITLS_TEST_HOOKS): lets the sandbox tests make a
 * real, locked-in worker attempt a forbidden system call on a live
 * connection.  Each attempt must kill the worker with SIGSYS; if the call
 * returns instead, the hook says so on stderr and the test fails. */
#include "internal.h"
#include "log.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <unistd.h>

void engine_test_hook_after_lock_in(pid_t master)
{
    const char *t = getenv("UCSPITLS_TEST_TRY");
    long rc = 0;

    if (t == NULL)
        return;
    log_line(LOG_ERROR, "test hook: trying %s", t);
    if (strcmp(t, "open") == 0) {
        rc = open("/etc/passwd", O_RDONLY);
    } else if (strcmp(t, "socket") == 0) {
        rc = socket(AF_INET, SOCK_STREAM, 0);
    } else if (strcmp(t, "execve") == 0) {
        char *argv[] = {(char *)"/bin/true", NULL};
        rc = execve("/bin/true", argv, argv + 1);
    } else if (strcmp(t, "ptrace") == 0) {
        rc = ptrace(PTRACE_ATTACH, master, NULL, NULL);
    } else if (strcmp(t, "fork") == 0) {
        rc = fork();
    } else if (strcmp(t, "kill") == 0) {
        rc = kill(master, SIGTERM);
    } else if (strcmp(t, "mprotect-exec") == 0) {
        static char page[8192] __attribute__((aligned(4096)));
        rc = mprotect(page, 4096, PROT_READ | PROT_EXEC);
    }
    log_line(LOG_ERROR, "test hook: %s was NOT killed (returned %ld)", t, rc);
}
