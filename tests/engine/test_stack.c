/* conn_stack_low() (engine/conn.c): where an idle worker's stack trim
 * (settle(): MADV_DONTNEED below the pump's frame) must stop.  The trim
 * zeroes whatever is mapped in its range, so the bound must lie inside the
 * calling thread's own stack, above its guard, on the main thread and on a
 * small thread stack of an embedder (whose neighbour mapping a wrong bound
 * would reach); and it is kept per thread. */
#include "check.h"
#include "internal.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>

#define SMALL_STACK (256 * 1024)

struct seen {
    uintptr_t low, frame, again;
};

static void *on_thread(void *arg)
{
    struct seen *s = arg;
    volatile int here = 0;

    s->low = conn_stack_low();
    s->frame = (uintptr_t)&here;
    s->again = conn_stack_low();
    return NULL;
}

int main(void)
{
    volatile int here = 0;
    uintptr_t main_low = conn_stack_low(), frame = (uintptr_t)&here;
    pthread_attr_t a;
    pthread_t t;
    struct seen s = {0, 0, 0};
    void *stack;

    /* main thread: below this frame, and within the stack's rlimit reach */
    CHECK(main_low != 0);
    CHECK(main_low < frame);
    CHECK(frame - main_low < 64u * 1024 * 1024);
    CHECK(main_low % 4096 == 0);

    /* a thread on a stack of our own, with a readable page right below
     * its guard: the bound must stay above both */
    stack = mmap(NULL, SMALL_STACK + 2 * 4096, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(stack != MAP_FAILED);
    if (stack == MAP_FAILED)
        return check_done("test_stack");
    /* page 0: a neighbour; page 1: the guard; then the stack */
    CHECK(mprotect((char *)stack + 4096, 4096, PROT_NONE) == 0);
    pthread_attr_init(&a);
    CHECK(pthread_attr_setstack(&a, (char *)stack + 2 * 4096, SMALL_STACK) == 0);
    CHECK(pthread_create(&t, &a, on_thread, &s) == 0);
    pthread_join(t, NULL);
    pthread_attr_destroy(&a);
    CHECK(s.low >= (uintptr_t)stack + 2 * 4096);
    CHECK(s.low < s.frame);
    CHECK(s.frame < (uintptr_t)stack + 2 * 4096 + SMALL_STACK);
    CHECK(s.again == s.low);              /* kept for the thread */
    CHECK(conn_stack_low() == main_low);  /* and per thread */
    munmap(stack, SMALL_STACK + 2 * 4096);
    return check_done("test_stack");
}
