/* unwind_unit.h - shared by tests/unwind_unit.c (frame pointers, -O1) and
 * tests/unwind_unit_nofp.c (-fomit-frame-pointer, -O2). */
#ifndef UU_UNWIND_UNIT_H
#define UU_UNWIND_UNIT_H
#include <stdint.h>

typedef void (*uu_fn_t)(void);
extern __thread volatile uintptr_t uu_sink; /* per thread: the stress threads share no data */
extern __thread uu_fn_t uu_mix_fn;

void uu_rec_nofp(int d, uu_fn_t at_bottom);
void uu_rec_alloca(int d, uu_fn_t at_bottom);
void uu_rec_vla(int d, uu_fn_t at_bottom);
int uu_multi_exit(int d, uu_fn_t at_bottom);
void uu_rec_mix(int d, uu_fn_t at_bottom);
void uu_rec_mix_nofp(int d);
void uu_rec_mix_fp(int d); /* in unwind_unit.c */
void uu_big_frame(uu_fn_t at_bottom);
void uu_huge_frame(uu_fn_t at_bottom);
#endif
