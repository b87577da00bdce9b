/* Sanitizer build only (cmake -DUCSPITLS_SANITIZE=ON, `make test-asan`): the
 * runtime options every program of the build starts with.  The top-level
 * CMakeLists.txt links this file into each executable; ASAN_OPTIONS,
 * UBSAN_OPTIONS and LSAN_OPTIONS still override single options.
 *
 * Why these, given that workers and keyd run chrooted under a seccomp
 * filter that kills on open, readlink, ioctl, clone and ptrace:
 * - log_path: a report of a process that can still open files goes to
 *   UCSPITLS_SANITIZER_REPORT_DIR/asan.PID, where the `sanitizer_reports`
 *   test (tests/sanitizer/check_reports.py) finds it even when the process's
 *   stderr went nowhere.  sandbox_install_seccomp() switches a process that
 *   locks itself in to stderr.  UBSan's runtime (a separate library with
 *   gcc) keeps stderr: it cannot be switched at lock-in.
 * - symbolize=0: symbolizing reads the binaries, which a locked-in process
 *   cannot; frames are printed as module+offset and check_reports.py
 *   symbolizes them afterwards with addr2line.
 * - color=never: deciding on colour asks isatty(2), an ioctl.
 * - abort_on_error=0: abort() sends a signal (tgkill), forbidden; the
 *   runtime ends the process with exit_group and exit code 1 instead.
 * - detect_leaks: LeakSanitizer checks at exit, which needs clone and
 *   ptrace.  Workers and keyd end with _exit(), which skips the check; tlsd
 *   becomes the worker and returns from main() locked in, so it is built
 *   with UCSPITLS_SANITIZER_NO_LEAK_CHECK (a leak check would kill it).
 * Allocation stacks use the fast unwinder, which stops at the first
 * libcrypto frame (OpenSSL has no frame pointers): for the whole stack of a
 * leak inside OpenSSL, rerun with ASAN_OPTIONS=fast_unwind_on_malloc=0
 * (nearly 3 times slower). */
#include <sanitizer/asan_interface.h>

#ifndef UCSPITLS_SANITIZER_REPORT_DIR
#error "UCSPITLS_SANITIZER_REPORT_DIR must name the report directory"
#endif

#ifdef UCSPITLS_SANITIZER_NO_LEAK_CHECK
#define LEAKS "detect_leaks=0"
#else
#define LEAKS "detect_leaks=1"
#endif

/* gcc's headers declare no UBSan interface */
const char *__ubsan_default_options(void);

const char *__asan_default_options(void)
{
    return "log_path=" UCSPITLS_SANITIZER_REPORT_DIR "/asan"
           ":symbolize=0:color=never:abort_on_error=0:halt_on_error=1:" LEAKS;
}

const char *__ubsan_default_options(void)
{
    return "print_stacktrace=1:symbolize=0:color=never:halt_on_error=1";
}
