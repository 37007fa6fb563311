/* kprobe.multi (fprobe) attach: needs CONFIG_FPROBE; Tetragon falls back to single kprobes without it. */
#include "hits.h"
SEC("kprobe.multi/security_file_open")
int kmulti_sfo(void *ctx) { bump(); return 0; }
