/*
 * bpfgate's USDT program: a stand-in for the tester programs Tetragon's USDT examples
 * name (contrib/tester-progs/usdt and usdt-override), written for bpfgate, not taken
 * from Tetragon. The guest image carries it at those paths, so that the example
 * policies' usdts have a binary to attach to and a trigger that fires them.
 *
 * Probes (systemtap <sys/sdt.h>, notes in .note.stapsdt):
 *   test:usdt3        int32, int64       no semaphore
 *   tetragon:test_4B  int32 x 3          semaphore tetragon_test_4B_semaphore: the probe
 *                                        fires only while a tracer holds it (uprobe ref_ctr)
 * Each fires ROUNDS times; the program then says on stdout whether test_4B's semaphore
 * was held, and exits 0.
 *
 * Freestanding and static (no libc): its own _start and raw syscalls, one source for
 * x86_64 and arm64, built by the image builder with the host's clang and lld.
 */
/* Arguments in registers or as constants, never memory operands: the simplest notes for
 * any consumer to read (sdt.h's documented way to pick the operand constraints). */
#define STAP_SDT_ARG_CONSTRAINT nr
#include <sys/sdt.h>

#define ROUNDS 3

/* The semaphore sits in .probes, a writable section the file backs: the kernel finds
 * it there by its file offset and counts the tracers attached to the probe. */
unsigned short tetragon_test_4B_semaphore __attribute__((section(".probes"), used));

static long raw_syscall3(long nr, long a, long b, long c)
{
#if defined(__x86_64__)
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return ret;
#elif defined(__aarch64__)
	register long x8 __asm__("x8") = nr;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	__asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
	return x0;
#else
#error "bpfgate's USDT program is built for x86_64 and arm64"
#endif
}

#if defined(__x86_64__)
#define NR_WRITE 1
#define NR_EXIT_GROUP 231
#else
#define NR_WRITE 64
#define NR_EXIT_GROUP 94
#endif

static __attribute__((noinline)) void fire_usdt3(int a, long b)
{
	STAP_PROBE2(test, usdt3, a, b);
}

/* sdt.h writes a semaphore's address into the note only with _SDT_HAS_SEMAPHORES, which
 * holds for a whole file; test_4B alone has one, so the macro it switches is set here. */
#undef _SDT_SEMAPHORE
#define _SDT_SEMAPHORE(p, n) _SDT_ASM_1(_SDT_ASM_ADDR p##_##n##_semaphore)

static __attribute__((noinline)) int fire_test_4B(int a, int b, int c)
{
	/* As instrumented programs do: the probe costs nothing unless a tracer holds it. */
	if (!*(volatile unsigned short *)&tetragon_test_4B_semaphore)
		return 0;
	STAP_PROBE3(tetragon, test_4B, a, b, c);
	return 1;
}

static void say(const char *s)
{
	long n = 0;
	while (s[n])
		n++;
	raw_syscall3(NR_WRITE, 1, (long)s, n);
}

__attribute__((used)) void bpfgate_usdt_main(void)
{
	int held = 0;
	for (int i = 0; i < ROUNDS; i++) {
		fire_usdt3(i, 0x100000000L + i);
		held += fire_test_4B(i, i + 1, i + 2);
	}
	say(held ? "usdt: test:usdt3 fired, tetragon:test_4B semaphore held\n"
		 : "usdt: test:usdt3 fired, tetragon:test_4B semaphore not held\n");
	raw_syscall3(NR_EXIT_GROUP, 0, 0, 0);
}

/* The entry point: align the stack as a call would, then run and exit. */
#if defined(__x86_64__)
__asm__(".globl _start\n_start:\n\txor %ebp, %ebp\n\tand $-16, %rsp\n\tcall bpfgate_usdt_main\n\thlt\n");
#else
__asm__(".globl _start\n_start:\n\tmov x29, #0\n\tbl bpfgate_usdt_main\n\tbrk #0\n");
#endif
