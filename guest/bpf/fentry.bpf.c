/* fentry through a BPF trampoline: fails with 524 on kernels without DYNAMIC_FTRACE_WITH_DIRECT_CALLS. */
#include "hits.h"
SEC("fentry/security_file_open")
int fentry_sfo(void *ctx) { bump(); return 0; }
