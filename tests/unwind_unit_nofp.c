/* unwind_unit_nofp.c - the frames of tests/unwind_unit.c that are built
 * without frame pointers, at -O2 (tests/unwind.cmake): CFA = RSP + off that
 * changes with every push, shrink-wrapped prologues, epilogues in the
 * middle of a function (remember_state / restore_state), and frames whose
 * size is only known at run time (alloca, VLAs: CFA = RBP + 16 again). */
#include <alloca.h>
#include <stdint.h>
#include <string.h>

#include "unwind_unit.h"

__thread volatile uintptr_t uu_sink;

/* Callee-saved registers pushed, a fixed frame below them. */
__attribute__((noinline)) void uu_rec_nofp(int d, uu_fn_t at_bottom) {
  volatile char buf[40];
  buf[0] = (char)d;
  if (d > 0) uu_rec_nofp(d - 1, at_bottom);
  else at_bottom();
  uu_sink += (uintptr_t)buf[0];
}

/* alloca: RBP becomes the CFA base even without frame pointers. */
__attribute__((noinline)) void uu_rec_alloca(int d, uu_fn_t at_bottom) {
  char *p = alloca((size_t)(d * 24 + 8));
  memset(p, d, (size_t)(d * 24 + 8));
  if (d > 0) uu_rec_alloca(d - 1, at_bottom);
  else at_bottom();
  uu_sink += (uintptr_t)p[d];
}

__attribute__((noinline)) void uu_rec_vla(int d, uu_fn_t at_bottom) {
  volatile char v[d * 8 + 3];
  v[0] = (char)d;
  if (d > 0) uu_rec_vla(d - 1, at_bottom);
  else at_bottom();
  uu_sink += (uintptr_t)v[0];
}

/* Several exits: GCC closes the frame on the early path with
 * remember_state ... restore_state around that epilogue, and the call
 * below comes after it. */
__attribute__((noinline)) int uu_multi_exit(int d, uu_fn_t at_bottom) {
  uintptr_t a = uu_sink, b = uu_sink * 3, c = uu_sink ^ 7;
  if (d == -1) return (int)(a + b + c);
  uu_sink += a;
  if (d == -2) {
    uu_sink += b;
    return (int)c;
  }
  if (d > 0) uu_multi_exit(d - 1, at_bottom);
  else at_bottom();
  return (int)(a * b + c);
}

/* Alternates frame kinds with uu_rec_mix_fp, by pointer at the bottom so
 * that nothing is inlined. */
__thread uu_fn_t uu_mix_fn;

/* Seven values live across the call: RBP is saved and used as an ordinary
 * register here, and the frame-pointer callers above need it back. */
__attribute__((noinline)) void uu_rec_mix_nofp(int d) {
  uintptr_t a = uu_sink, b = a * 3, c = a ^ 5, e = a + 11, f = a * 13, g = a - 17, h = a | 19;
  if (d > 0) uu_rec_mix_fp(d - 1);
  else uu_mix_fn();
  uu_sink += a + b * c + e * f + g * h + (uintptr_t)d;
}

void uu_rec_mix(int d, uu_fn_t at_bottom) {
  uu_mix_fn = at_bottom;
  if (d & 1) uu_rec_mix_fp(d);
  else uu_rec_mix_nofp(d);
}

/* A frame bigger than 64 KiB (still a plain RSP + off rule), and one
 * bigger than the rule's offset field holds (1 MiB): that one is left to
 * libgcc. */
__attribute__((noinline)) void uu_big_frame(uu_fn_t at_bottom) {
  volatile char big[200000];
  big[0] = 1;
  big[sizeof big - 1] = 2;
  at_bottom();
  uu_sink += (uintptr_t)big[0] + (uintptr_t)big[sizeof big - 1];
}

__attribute__((noinline)) void uu_huge_frame(uu_fn_t at_bottom) {
  volatile char huge[1200000];
  huge[0] = 1;
  huge[sizeof huge - 1] = 2;
  at_bottom();
  uu_sink += (uintptr_t)huge[0] + (uintptr_t)huge[sizeof huge - 1];
}
