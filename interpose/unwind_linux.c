/* unwind_linux.c - the fast stack walker behind capture() (sample.c): x86-64,
 * Linux, glibc 2.35+.
 *
 * libgcc's _Unwind_Backtrace finds and interprets each frame's CFI anew on
 * every capture (~1,600 instructions a frame). Nearly every frame a
 * compiler makes follows one rule that three numbers describe:
 *     CFA = RSP + off  or  RBP + off;  return address at CFA-8;
 *     caller's RBP saved at CFA-8k, or RBP unchanged,
 * so this walker keeps that rule per return address in a fixed table and
 * does a frame in a few dozen instructions once the table knows it.
 *
 * The table: 64K direct-mapped entries of {seq, rule, tag} (1 MiB from
 * vkm_plat_map at init; its pages are touched only as return addresses
 * come). Lock-free: the writer makes seq odd with a CAS (or gives up if
 * another writer has it), stores rule and tag, and makes seq even again;
 * a reader takes the entry only when seq was even and the same around its
 * reads (a seqlock). The tag is the return address with an epoch in its
 * top 7 bits: vkm_unwind_flush (an object was unloaded, seg.c) moves the
 * epoch on so that every older entry misses, and a rule computed before a
 * flush is stored under the epoch it was computed in.
 *
 * A miss computes the rule from the object's CFI: _dl_find_object (lock-
 * free, allocation-free, async-signal-safe) gives the object's
 * .eh_frame_hdr, whose sorted table is searched for the FDE; the CIE's
 * and FDE's instructions are run up to the address, as libgcc runs them
 * (rows whose location is below the return address). Anything outside the
 * rule above - CFA expressions or other base registers, rules for RSP,
 * RBP kept in another register or by expression, a return address not at
 * CFA-8, signal frames ('S'), augmentations other than z/R/P/L, no FDE,
 * no object (JIT code, registered with __register_frame) - is cached as
 * "unsupported" and vkm_unwind returns -1: capture() then walks the whole
 * stack again with _Unwind_Backtrace, so its frames are exactly libgcc's.
 * A return address whose rule says the return address is undefined
 * (_start, the thread start in clone3) ends the stack, as in libgcc.
 *
 * Reads: the CFI of loaded objects (as libgcc reads it), and the stack,
 * only inside [RSP at entry, top of this thread's stack). The top is the
 * thread pointer for threads that glibc made (their struct pthread, and
 * the static TLS below it, sit at the top of the stack block), or
 * __libc_stack_end on the main thread; when RSP lies in neither (a
 * coroutine or signal stack), the walk is left to libgcc. Each frame's CFA
 * must be 8-aligned, above the previous one and not past the top, and the
 * saved RBP must lie within the frame: a corrupt stack ends the walk.
 *
 * No system call, no allocation, no lock, no process-wide state: the same
 * contract as sample.c's capture.
 */
#include "hot.h"

#include <string.h>

#if defined(__x86_64__) && defined(__linux__)
#include <dlfcn.h>
#include <link.h>
#include <sys/resource.h>
#endif

#if defined(__x86_64__) && defined(__linux__) && defined(DLFO_EH_SEGMENT_TYPE)

#define CACHE_BITS 16
#define CACHE_SIZE (1u << CACHE_BITS)
#define EPOCH_SHIFT 57 /* user addresses are below 2^56, even with 5-level paging */
#define THREAD_SPAN ((uintptr_t)256 << 20) /* a thread's stack: at most this far below its TCB */

typedef struct entry_s {
  uint32_t seq;  /* atomic: odd while written */
  uint32_t rule; /* atomic: 0 = empty */
  uint64_t tag;  /* atomic: return address | epoch << EPOCH_SHIFT */
} entry_t;

/* A rule in 32 bits. */
#define R_KIND 3u /* bits 0-1 */
#define R_FRAME 1u
#define R_END 2u   /* return address undefined: the outermost frame */
#define R_UNSUP 3u /* leave the whole walk to libgcc */
#define R_CFA_RBP 4u   /* CFA = RBP + off, else RSP + off */
#define R_RBP_SAVED 8u /* caller's RBP at CFA - 8 * slot, else unchanged */
#define R_SLOT_SHIFT 4 /* bits 4-11: slot */
#define R_OFF_SHIFT 12 /* bits 12-31: CFA offset */
#define R_OFF_MAX ((1u << 20) - 1)

static entry_t *cache;
static uint32_t epoch; /* atomic; only the low 7 bits are used */
static uintptr_t main_top, main_span, main_tp;
extern void *__libc_stack_end;

static inline uintptr_t thread_pointer(void) {
  uintptr_t tp;
  __asm__("mov %%fs:0, %0" : "=r"(tp));
  return tp;
}

void vkm_unwind_init(void) {
  if (cache) return;
  entry_t *c = vkm_plat_map(sizeof(entry_t) * CACHE_SIZE);
  if (!c) return; /* every capture goes to libgcc */
  vkm_self_track((int64_t)(sizeof(entry_t) * CACHE_SIZE));
  struct rlimit rl;
  uintptr_t span = (uintptr_t)8 << 20;
  if (getrlimit(RLIMIT_STACK, &rl) == 0) span = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1ul << 30) ? (1ul << 30) : (uintptr_t)rl.rlim_cur;
  main_span = span;
  /* __libc_stack_end is near the kernel's initial RSP; the argument and
   * environment vectors lie above it (at least 256 bytes of them). */
  main_top = (uintptr_t)__libc_stack_end + 256;
  uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
  if (sp < main_top && main_top - sp <= span) main_tp = thread_pointer();
  __atomic_store_n(&cache, c, __ATOMIC_RELEASE);
}

void vkm_unwind_flush(void) {
  if (!cache) return;
  uint32_t e = __atomic_add_fetch(&epoch, 1, __ATOMIC_RELEASE);
  if ((e & 127) == 0) vkm_plat_zero(cache, sizeof(entry_t) * CACHE_SIZE); /* tags of 128 flushes ago */
}

/* The top of the calling thread's stack, or 0 when unknown. */
static inline uintptr_t stack_top(uintptr_t sp) {
  uintptr_t tp = thread_pointer();
  if (tp != main_tp && sp < tp && tp - sp <= THREAD_SPAN) return tp;
  if (sp < main_top && main_top - sp <= main_span) return main_top;
  return 0;
}

/* ---------------------------------------------------------------------------
 * CFI
 * ------------------------------------------------------------------------- */
typedef struct {
  const uint8_t *p, *end;
  int bad;
} rd_t;

static uint64_t rd_bytes(rd_t *r, size_t n) {
  uint64_t v = 0;
  if (r->bad || (size_t)(r->end - r->p) < n) {
    r->bad = 1;
    return 0;
  }
  memcpy(&v, r->p, n); /* little-endian */
  r->p += n;
  return v;
}
static uint8_t rd_u8(rd_t *r) { return (uint8_t)rd_bytes(r, 1); }

/* LEB128: the value's bits; *bits is how many were read, *last the last
 * byte (0 when the number is bad). */
static uint64_t rd_leb(rd_t *r, unsigned *bits, uint8_t *last) {
  uint64_t v = 0;
  for (unsigned shift = 0;; shift += 7) {
    if (r->bad || r->p >= r->end || shift > 63) {
      r->bad = 1;
      *bits = 0;
      *last = 0;
      return 0;
    }
    uint8_t b = *r->p++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *bits = shift + 7;
      *last = b;
      return v;
    }
  }
}

static uint64_t rd_uleb(rd_t *r) {
  unsigned bits;
  uint8_t last;
  return rd_leb(r, &bits, &last);
}

static int64_t rd_sleb(rd_t *r) {
  unsigned bits;
  uint8_t last;
  uint64_t v = rd_leb(r, &bits, &last);
  if (bits < 64 && (last & 0x40)) v |= ~(uint64_t)0 << bits; /* sign-extend */
  return (int64_t)v;
}

/* A DW_EH_PE-encoded value: absolute, pc-relative or (datarel != 0)
 * relative to datarel; no indirection. */
static uintptr_t rd_enc(rd_t *r, uint8_t enc, uintptr_t datarel) {
  uintptr_t at = (uintptr_t)r->p, base;
  uint64_t v;
  if (enc == 0xff || (enc & 0x80)) {
    r->bad = 1;
    return 0;
  }
  switch (enc & 0x70) {
    case 0x00: base = 0; break;
    case 0x10: base = at; break;
    case 0x30: base = datarel; if (!datarel) r->bad = 1; break;
    default: r->bad = 1; return 0;
  }
  switch (enc & 0x0f) {
    case 0x00: case 0x04: case 0x0c: v = rd_bytes(r, 8); break;
    case 0x01: v = rd_uleb(r); break;
    case 0x02: v = rd_bytes(r, 2); break;
    case 0x03: v = rd_bytes(r, 4); break;
    case 0x09: v = (uint64_t)rd_sleb(r); break;
    case 0x0a: v = (uint64_t)(int64_t)(int16_t)rd_bytes(r, 2); break;
    case 0x0b: v = (uint64_t)(int64_t)(int32_t)rd_bytes(r, 4); break;
    default: r->bad = 1; return 0;
  }
  return base + (uintptr_t)v;
}

/* The FDE for pc, from the object's .eh_frame_hdr search table. */
static const uint8_t *fde_for(const uint8_t *hdr, uintptr_t pc) {
  if (hdr[0] != 1) return NULL;
  rd_t r = {hdr + 4, hdr + 4 + 32, 0};
  (void)rd_enc(&r, hdr[1], (uintptr_t)hdr); /* .eh_frame itself: not needed */
  uintptr_t count = rd_enc(&r, hdr[2], (uintptr_t)hdr);
  if (r.bad || hdr[3] != 0x3b /* datarel | sdata4 */ || count == 0 || count > (1u << 28)) return NULL;
  const uint8_t *tab = r.p;
  size_t lo = 0, hi = count; /* the last entry whose start is <= pc */
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    int32_t start;
    memcpy(&start, tab + mid * 8, 4);
    if ((uintptr_t)hdr + (uintptr_t)(intptr_t)start <= pc) lo = mid;
    else hi = mid;
  }
  int32_t start, fde;
  memcpy(&start, tab + lo * 8, 4);
  memcpy(&fde, tab + lo * 8 + 4, 4);
  if ((uintptr_t)hdr + (uintptr_t)(intptr_t)start > pc) return NULL;
  return (const uint8_t *)((uintptr_t)hdr + (uintptr_t)(intptr_t)fde);
}

/* How a register is found in the caller. */
enum { H_SAME = 0, H_OFFSET, H_UNDEF, H_OTHER };

typedef struct {
  int64_t cfa_off, rbp_off, ra_off;
  int cfa_reg; /* DWARF number; -1: an expression */
  uint8_t rbp, ra, rsp;
} row_t;

#define REG_RBP 6
#define REG_RSP 7
#define REG_RA 16
#define STATE_DEPTH 8

static void set_reg(row_t *row, uint64_t reg, int how, int64_t off) {
  if (reg == REG_RBP) row->rbp = (uint8_t)how, row->rbp_off = off;
  else if (reg == REG_RA) row->ra = (uint8_t)how, row->ra_off = off;
  else if (reg == REG_RSP) row->rsp = (uint8_t)how; /* any rule for RSP: unsupported below */
  /* other registers never serve as a CFA base here: their rules do not matter */
}

static void restore_reg(row_t *row, const row_t *init, uint64_t reg) {
  if (reg == REG_RBP) row->rbp = init->rbp, row->rbp_off = init->rbp_off;
  else if (reg == REG_RA) row->ra = init->ra, row->ra_off = init->ra_off;
  else if (reg == REG_RSP) row->rsp = init->rsp;
}

typedef struct {
  uint64_t caf;
  int64_t daf;
  uint8_t fde_enc;
  uintptr_t loc, target; /* rows at locations below target apply */
  row_t init;            /* the CIE's row, for DW_CFA_restore */
  row_t stack[STATE_DEPTH];
  int depth;
} cfa_state_t;

/* Runs instructions [p, end) into row; 0 on an instruction it does not know. */
static int run_cfi(cfa_state_t *st, row_t *row, const uint8_t *p, const uint8_t *end) {
  rd_t r = {p, end, 0};
  while (r.p < r.end && st->loc < st->target) {
    uint8_t op = rd_u8(&r);
    uint64_t reg, a;
    if (op >> 6) {
      switch (op >> 6) {
        case 1: st->loc += (op & 0x3f) * st->caf; break;                                   /* advance_loc */
        case 2: set_reg(row, op & 0x3f, H_OFFSET, (int64_t)rd_uleb(&r) * st->daf); break; /* offset */
        default: restore_reg(row, &st->init, op & 0x3f); break;                           /* restore */
      }
    } else {
      switch (op) {
        case 0x00: break;                                       /* nop */
        case 0x01: st->loc = rd_enc(&r, st->fde_enc, 0); break; /* set_loc */
        case 0x02: st->loc += rd_bytes(&r, 1) * st->caf; break; /* advance_loc1 */
        case 0x03: st->loc += rd_bytes(&r, 2) * st->caf; break;
        case 0x04: st->loc += rd_bytes(&r, 4) * st->caf; break;
        case 0x05: /* offset_extended */
          reg = rd_uleb(&r);
          set_reg(row, reg, H_OFFSET, (int64_t)rd_uleb(&r) * st->daf);
          break;
        case 0x06: restore_reg(row, &st->init, rd_uleb(&r)); break; /* restore_extended */
        case 0x07: set_reg(row, rd_uleb(&r), H_UNDEF, 0); break;    /* undefined */
        case 0x08: /* same_value */
          reg = rd_uleb(&r);
          set_reg(row, reg, reg == REG_RA ? H_OTHER : H_SAME, 0);
          break;
        case 0x09: /* register */
          reg = rd_uleb(&r);
          (void)rd_uleb(&r);
          set_reg(row, reg, H_OTHER, 0);
          break;
        case 0x0a: /* remember_state */
          if (st->depth >= STATE_DEPTH) return 0;
          st->stack[st->depth++] = *row;
          break;
        case 0x0b: /* restore_state */
          if (st->depth <= 0) return 0;
          *row = st->stack[--st->depth];
          break;
        case 0x0c: /* def_cfa */
          row->cfa_reg = (int)rd_uleb(&r);
          row->cfa_off = (int64_t)rd_uleb(&r);
          break;
        case 0x0d: row->cfa_reg = (int)rd_uleb(&r); break;      /* def_cfa_register */
        case 0x0e: row->cfa_off = (int64_t)rd_uleb(&r); break;  /* def_cfa_offset */
        case 0x0f: /* def_cfa_expression */
          a = rd_uleb(&r);
          if (a > (uint64_t)(r.end - r.p)) return 0;
          r.p += a;
          row->cfa_reg = -1;
          break;
        case 0x10: case 0x16: /* expression, val_expression */
          reg = rd_uleb(&r);
          a = rd_uleb(&r);
          if (r.bad || a > (uint64_t)(r.end - r.p)) return 0;
          r.p += a;
          set_reg(row, reg, H_OTHER, 0);
          break;
        case 0x11: /* offset_extended_sf */
          reg = rd_uleb(&r);
          set_reg(row, reg, H_OFFSET, rd_sleb(&r) * st->daf);
          break;
        case 0x12: /* def_cfa_sf */
          row->cfa_reg = (int)rd_uleb(&r);
          row->cfa_off = rd_sleb(&r) * st->daf;
          break;
        case 0x13: row->cfa_off = rd_sleb(&r) * st->daf; break; /* def_cfa_offset_sf */
        case 0x14: /* val_offset */
          reg = rd_uleb(&r);
          (void)rd_uleb(&r);
          set_reg(row, reg, H_OTHER, 0);
          break;
        case 0x15: /* val_offset_sf */
          reg = rd_uleb(&r);
          (void)rd_sleb(&r);
          set_reg(row, reg, H_OTHER, 0);
          break;
        case 0x2e: (void)rd_uleb(&r); break; /* GNU_args_size */
        case 0x2f: /* GNU_negative_offset_extended */
          reg = rd_uleb(&r);
          set_reg(row, reg, H_OFFSET, -(int64_t)rd_uleb(&r) * st->daf);
          break;
        default: return 0;
      }
    }
    if (r.bad) return 0;
  }
  return !r.bad;
}

/* The rule for the frame whose return address (or PC + 1) is ra. */
static uint32_t rule_compute(uintptr_t ra) {
  uintptr_t pc = ra - 1;
  struct dl_find_object fo;
  if (_dl_find_object((void *)pc, &fo) != 0 || !fo.dlfo_eh_frame) return R_UNSUP;
  const uint8_t *fde = fde_for(fo.dlfo_eh_frame, pc);
  if (!fde) return R_UNSUP;

  /* FDE header */
  uint32_t len, cie_off;
  memcpy(&len, fde, 4);
  if (len == 0 || len >= 0xfffffff0u) return R_UNSUP; /* terminator, or 64-bit DWARF */
  memcpy(&cie_off, fde + 4, 4);
  if (cie_off == 0) return R_UNSUP; /* a CIE, not an FDE */
  const uint8_t *fde_end = fde + 4 + len;
  const uint8_t *cie = fde + 4 - cie_off;

  /* CIE */
  uint32_t clen, cid;
  memcpy(&clen, cie, 4);
  memcpy(&cid, cie + 4, 4);
  if (clen == 0 || clen >= 0xfffffff0u || cid != 0) return R_UNSUP;
  rd_t r = {cie + 8, cie + 4 + clen, 0};
  uint8_t version = rd_u8(&r);
  if (version != 1 && version != 3) return R_UNSUP;
  const char *aug = (const char *)r.p;
  size_t auglen = strnlen(aug, (size_t)(r.end - r.p));
  if (auglen == (size_t)(r.end - r.p)) return R_UNSUP;
  r.p += auglen + 1;
  cfa_state_t st;
  memset(&st, 0, sizeof st);
  st.caf = rd_uleb(&r);
  st.daf = rd_sleb(&r);
  uint64_t ra_reg = version == 1 ? rd_u8(&r) : rd_uleb(&r);
  if (r.bad || ra_reg != REG_RA) return R_UNSUP;
  st.fde_enc = 0; /* absptr */
  int has_z = aug[0] == 'z';
  if (has_z) {
    uint64_t alen = rd_uleb(&r);
    if (r.bad || alen > (uint64_t)(r.end - r.p)) return R_UNSUP;
    rd_t a = {r.p, r.p + alen, 0};
    for (const char *c = aug + 1; *c; c++) {
      if (*c == 'R') st.fde_enc = rd_u8(&a);
      else if (*c == 'L') (void)rd_u8(&a);
      else if (*c == 'P') {
        uint8_t penc = rd_u8(&a);
        (void)rd_enc(&a, penc & 0x7f, 0); /* the personality: skipped (indirect is fine) */
      } else return R_UNSUP; /* 'S' (signal frame) and anything else */
      if (a.bad) return R_UNSUP;
    }
    r.p += alen;
  } else if (aug[0]) {
    return R_UNSUP;
  }
  const uint8_t *cie_insns = r.p, *cie_end = r.end;

  /* FDE: range and instructions */
  rd_t f = {fde + 8, fde_end, 0};
  uintptr_t begin = rd_enc(&f, st.fde_enc, 0);
  uintptr_t range = rd_enc(&f, st.fde_enc & 0x0f, 0);
  if (has_z) {
    uint64_t alen = rd_uleb(&f);
    if (alen > (uint64_t)(f.end - f.p)) return R_UNSUP;
    f.p += alen;
  }
  if (f.bad || pc < begin || pc - begin >= range) return R_UNSUP;

  row_t row = {.cfa_reg = -1, .rbp = H_SAME, .ra = H_SAME, .rsp = H_SAME};
  st.loc = begin;
  st.target = (uintptr_t)-1; /* the CIE's instructions all apply */
  if (!run_cfi(&st, &row, cie_insns, cie_end)) return R_UNSUP;
  st.init = row;
  st.depth = 0;
  st.loc = begin;
  st.target = ra;
  if (!run_cfi(&st, &row, f.p, fde_end)) return R_UNSUP;

  /* The row, as a rule. */
  if (row.ra == H_UNDEF) return R_END;
  if (row.ra != H_OFFSET || row.ra_off != -8 || row.rsp != H_SAME) return R_UNSUP;
  if ((row.cfa_reg != REG_RSP && row.cfa_reg != REG_RBP) || row.cfa_off < (row.cfa_reg == REG_RSP ? 8 : 0) ||
      row.cfa_off > (int64_t)R_OFF_MAX)
    return R_UNSUP;
  uint32_t rule = R_FRAME | (uint32_t)row.cfa_off << R_OFF_SHIFT | (row.cfa_reg == REG_RBP ? R_CFA_RBP : 0);
  if (row.rbp == H_OFFSET) {
    if (row.rbp_off >= 0 || (-row.rbp_off) % 8 || -row.rbp_off / 8 > 255) return R_UNSUP;
    rule |= R_RBP_SAVED | (uint32_t)(-row.rbp_off / 8) << R_SLOT_SHIFT;
  } else if (row.rbp != H_SAME) {
    return R_UNSUP;
  }
  return rule;
}

/* ---------------------------------------------------------------------------
 * The table and the walk
 * ------------------------------------------------------------------------- */
static inline entry_t *entry_for(uintptr_t ra) {
  return &cache[(ra * 0x9E3779B97F4A7C15ull) >> (64 - CACHE_BITS)];
}

static VKM_COLD uint32_t rule_miss(entry_t *e, uintptr_t ra, uint64_t tag) {
  uint32_t rule = rule_compute(ra);
  uint32_t s = __atomic_load_n(&e->seq, __ATOMIC_RELAXED);
  if (!(s & 1) && __atomic_compare_exchange_n(&e->seq, &s, s + 1, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    /* release stores, acquire loads in rule_for (plain moves on x86-64):
     * a reader that sees either store sees seq odd or moved on after it */
    __atomic_store_n(&e->rule, rule, __ATOMIC_RELEASE);
    __atomic_store_n(&e->tag, tag, __ATOMIC_RELEASE);
    __atomic_store_n(&e->seq, s + 2, __ATOMIC_RELEASE);
  } /* else another writer has the entry: use the rule uncached */
  return rule;
}

static inline uint32_t rule_for(uintptr_t ra, uint64_t ep) {
  entry_t *e = entry_for(ra);
  uint64_t tag = ra | ep;
  uint32_t s = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE);
  uint32_t rule = __atomic_load_n(&e->rule, __ATOMIC_ACQUIRE);
  uint64_t t = __atomic_load_n(&e->tag, __ATOMIC_ACQUIRE);
  if (vkm_likely(t == tag && rule && !(s & 1) && __atomic_load_n(&e->seq, __ATOMIC_RELAXED) == s)) return rule;
  return rule_miss(e, ra, tag);
}

#define stack_word(at) (*(const uintptr_t *)(at))

/* Not under ASan (test builds): it reads the return address and saved RBP
 * slots of other frames. */
VKM_NOINLINE __attribute__((no_sanitize_address)) int vkm_unwind(void **frames, int max, int *partial) {
  *partial = 0;
  if (vkm_unlikely(!__atomic_load_n(&cache, __ATOMIC_ACQUIRE))) return -1;
  uintptr_t pc, sp, bp;
  /* RBP first: either of the other outputs may be RBP itself. pc is the
   * address right after these instructions, where RSP is still sp. */
  __asm__ volatile("mov %%rbp, %2\n\t"
                   "mov %%rsp, %1\n\t"
                   "lea 0(%%rip), %0"
                   : "=&r"(pc), "=&r"(sp), "=&r"(bp));
  uintptr_t top = stack_top(sp);
  if (!top) return -1;
  uint64_t ep = (uint64_t)(__atomic_load_n(&epoch, __ATOMIC_ACQUIRE) & 127) << EPOCH_SHIFT;
  uintptr_t ra = pc + 1; /* this frame: the row at pc itself */
  int n = 0;
  for (;;) {
    uint32_t rule = rule_for(ra, ep);
    if (vkm_unlikely((rule & R_KIND) != R_FRAME)) {
      *partial = n;
      return (rule & R_KIND) == R_END ? n : -1;
    }
    uintptr_t cfa = ((rule & R_CFA_RBP) ? bp : sp) + (rule >> R_OFF_SHIFT);
    if (vkm_unlikely(cfa < sp + 8 || cfa > top || (cfa & 7))) return n; /* corrupt: end here */
    ra = stack_word(cfa - 8);
    if (rule & R_RBP_SAVED) {
      uintptr_t slot = cfa - 8 * ((rule >> R_SLOT_SHIFT) & 0xff);
      if (vkm_unlikely(slot < sp)) return n;
      bp = stack_word(slot);
    }
    sp = cfa;
    if (!ra || n >= max) return n; /* libgcc's walk stops at a zero address too */
    frames[n++] = (void *)ra;
  }
}

#else /* not x86-64 Linux with _dl_find_object: libgcc walks every stack */

void vkm_unwind_init(void) {}
void vkm_unwind_flush(void) {}
int vkm_unwind(void **frames, int max, int *partial) {
  (void)frames;
  (void)max;
  *partial = 0;
  return -1;
}

#endif
