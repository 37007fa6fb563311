/* Plain kprobe on security_file_open: the baseline every kernel should pass. */
#include "hits.h"
SEC("kprobe/security_file_open")
int kprobe_sfo(void *ctx) { bump(); return 0; }
