/* A syscall tracepoint program: what Tetragon's tracepoint sensor builds on. */
#include "hits.h"
SEC("tracepoint/syscalls/sys_enter_openat")
int tp_openat(void *ctx) { bump(); return 0; }
