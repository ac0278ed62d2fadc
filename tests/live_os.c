/* live_os.c - the Linux /proc readers. Compiles agent/os_linux.c directly.
 *  1. a planted smaps file (known kinds and sizes, > 64 KiB so lines cross
 *     read chunks) gives the exact breakdown;
 *  2. this very process, with a planted brk heap (sbrk), 32 MiB of anonymous
 *     memory and four threads with touched stacks: the breakdown sums to
 *     within 5 % of RSS and each kind holds what we put there;
 *  3. cadence: statm every call, smaps only every 10 s, when forced, or
 *     when RSS drifted; JSON shape;
 *  4. the agent thread's own file table, and the /proc files it keeps
 *     open there. */
#include "check.h"
#include "agent.h"
#include "../interpose/platform.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

int vkm_os_smaps_breakdown(const char *path, vkm_os_t *out);

#define SEC 1000000000ull
#define KB 1024ull
#define MB (1024ull * 1024ull)

/* ---------------------------------------------------------------------------
 * 1. planted smaps
 * ------------------------------------------------------------------------- */

static void vma(FILE *f, uint64_t *addr, uint64_t size, const char *perms, const char *name, uint64_t rss_kb,
                uint64_t anon_kb) {
  fprintf(f, "%012llx-%012llx %s 00000000 %s %s%s%s\n", (unsigned long long)*addr,
          (unsigned long long)(*addr + size), perms, name[0] == '/' ? "08:01" : "00:00",
          name[0] == '/' ? "1234567" : "0", name[0] ? "                    " : "", name);
  fprintf(f,
          "Size:           %8llu kB\nKernelPageSize:        4 kB\nMMUPageSize:           4 kB\n"
          "Rss:            %8llu kB\nPss:            %8llu kB\nPss_Dirty:             0 kB\n"
          "Shared_Clean:          0 kB\nShared_Dirty:          0 kB\nPrivate_Clean:         0 kB\n"
          "Private_Dirty:  %8llu kB\nReferenced:     %8llu kB\nAnonymous:      %8llu kB\n"
          "LazyFree:              0 kB\nAnonHugePages:         0 kB\nShmemPmdMapped:        0 kB\n"
          "FilePmdMapped:         0 kB\nShared_Hugetlb:        0 kB\nPrivate_Hugetlb:       0 kB\n"
          "Swap:                  0 kB\nSwapPss:               0 kB\nLocked:                0 kB\n"
          "THPeligible:    0\nVmFlags: rd wr mr mw me ac sd\n",
          (unsigned long long)(size / KB), (unsigned long long)rss_kb, (unsigned long long)rss_kb,
          (unsigned long long)anon_kb, (unsigned long long)rss_kb, (unsigned long long)anon_kb);
  *addr += size;
}

static void test_planted_smaps(void) {
  char path[] = "/tmp/live_os_smaps_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  FILE *f = fdopen(fd, "w");
  uint64_t a = 0x55d000000000ull;
  const int groups = 300;
  for (int g = 0; g < groups; g++) {
    vma(f, &a, 132 * KB, "rw-p", "[heap]", 100, 100);
    a += 64 * KB;
    vma(f, &a, 4 * KB, "---p", "", 0, 0);              /* pthread guard ... */
    vma(f, &a, 8 * MB, "rw-p", "", 200, 200);          /* ... and its stack above it */
    a += 64 * KB;
    vma(f, &a, 1 * MB, "rw-p", "", 300, 300);          /* plain anonymous */
    vma(f, &a, 2 * MB, "r-xp", "/usr/lib/x86_64-linux-gnu/libfoo.so.1", 400, 50);
    vma(f, &a, 8 * KB, "r-xp", "[vdso]", 8, 0);
    vma(f, &a, 132 * KB, "rw-p", "[stack]", 16, 16);
    a += 64 * KB;
    vma(f, &a, 4 * MB, "rw-p", "", 1000, 1000);        /* arena: rw below ... */
    vma(f, &a, 60 * MB, "---p", "", 0, 0);             /* ... its PROT_NONE tail above */
    a += 64 * KB;
    vma(f, &a, 64 * KB, "rw-p", "[anon:mylabel]", 5, 5);
    vma(f, &a, 64 * KB, "rw-p", "/tmp/a file (deleted)", 7, 0);
    vma(f, &a, 64 * KB, "rw-s", "/dev/zero (deleted)", 11, 0);  /* shared anonymous */
    vma(f, &a, 64 * KB, "rw-s", "/memfd:pool (deleted)", 13, 0);
    vma(f, &a, 2 * MB, "---p", "", 0, 0);              /* too big for a guard */
    vma(f, &a, 1 * MB, "rw-p", "", 30, 30);
    a += 64 * KB;
  }
  fclose(f);
  vkm_os_t os;
  memset(&os, 0, sizeof os);
  CHECK_EQ(vkm_os_smaps_breakdown(path, &os), 0);
  unlink(path);
  CHECK_EQ(os.have_smaps, 1);
  CHECK_EQ(os.smaps_heap, groups * 100 * KB);
  CHECK_EQ(os.smaps_stack, groups * (200 + 16) * KB);
  CHECK_EQ(os.smaps_anon, groups * (300 + 50 + 1000 + 5 + 30 + 11 + 13) * KB);
  CHECK_EQ(os.smaps_file, groups * (350 + 7) * KB);
  CHECK_EQ(os.smaps_other, groups * 8 * KB);
  CHECK(vkm_os_smaps_breakdown("/nonexistent/smaps", &os) < 0);
}

/* ---------------------------------------------------------------------------
 * 2. this process
 * ------------------------------------------------------------------------- */

#define NTHREADS 4
#define STACK_TOUCH (512 * KB)
static pthread_barrier_t ready, done;

static void *thread_main(void *arg) {
  volatile char buf[STACK_TOUCH];
  for (size_t i = 0; i < sizeof buf; i += 512) buf[i] = (char)i;
  pthread_barrier_wait(&ready);
  pthread_barrier_wait(&done);
  return (void *)(uintptr_t)buf[100];
}

static void *warm_main(void *arg) { return arg; }

static uint64_t sum_smaps(const vkm_os_t *o) {
  return o->smaps_heap + o->smaps_anon + o->smaps_file + o->smaps_stack + o->smaps_other;
}

static void touch(char *p, size_t n) {
  for (size_t i = 0; i < n; i += 4096) p[i] = 1;
}

/* Memory is planted with sbrk and mmap directly, not malloc, so the test
 * holds under any allocator (ASan's never uses brk and quarantines frees). */
static char *map_anon(size_t n) {
  char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(p != MAP_FAILED);
  touch(p, n);
  return p;
}

static void test_self(void) {
  /* brk heap: 4 MiB past the current break, touched */
  enum { NSMALL = 4096 };
  char *brk_area = sbrk(NSMALL * 1024);
  CHECK(brk_area != (void *)-1);
  touch(brk_area, NSMALL * 1024);
  /* anonymous */
  char *big = map_anon(32 * MB);

  /* Before our threads: what the runtime already has. A sanitizer starts a
   * thread of its own at the first pthread_create: get that done first. */
  pthread_t warm;
  pthread_create(&warm, NULL, warm_main, NULL);
  pthread_join(warm, NULL);
  vkm_os_t base;
  /* The first call owes a breakdown, but a final tick nobody reads
   * (VKM_SMAPS_NONE) skips it and still has the cheap figures. */
  vkm_os_sample(&base, 99 * SEC, VKM_SMAPS_NONE);
  CHECK_EQ(base.have_smaps, 0);
  CHECK_GT(base.rss, 0);
  CHECK_GE(base.threads, 1);
  vkm_os_sample(&base, 100 * SEC, VKM_SMAPS_FORCE);
  CHECK_EQ(base.have_smaps, 1);
  CHECK_GE(base.threads, 1);

  pthread_barrier_init(&ready, NULL, NTHREADS + 1);
  pthread_barrier_init(&done, NULL, NTHREADS + 1);
  pthread_t th[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) pthread_create(&th[i], NULL, thread_main, NULL);
  pthread_barrier_wait(&ready);

  vkm_os_t os;
  uint64_t t0 = 1000 * SEC;
  vkm_os_sample(&os, t0, 1);
  CHECK_EQ(os.have_smaps, 1);
  uint64_t sum = sum_smaps(&os);
  fprintf(stderr,
          "self: rss %llu KiB, smaps heap %llu anon %llu file %llu stack %llu other %llu = %llu KiB\n",
          (unsigned long long)(os.rss / KB), (unsigned long long)(os.smaps_heap / KB),
          (unsigned long long)(os.smaps_anon / KB), (unsigned long long)(os.smaps_file / KB),
          (unsigned long long)(os.smaps_stack / KB), (unsigned long long)(os.smaps_other / KB),
          (unsigned long long)(sum / KB));
  CHECK_NEAR((double)sum, (double)os.rss, 0.05 * (double)os.rss);
  CHECK_GE(os.smaps_heap, NSMALL * 1024);
  CHECK_GE(os.smaps_anon, 32 * MB);
  /* (glibc may hand the warm-up thread's cached stack to one of ours) */
  CHECK_GE(os.smaps_stack, base.smaps_stack + NTHREADS * STACK_TOUCH - 64 * KB);
  /* Static TLS lives at the top of a thread's stack mapping (TSan's is
   * ~1 MiB), so allow for it; the anonymous 32 MiB must not count here. */
  CHECK_LE(os.smaps_stack, base.smaps_stack + NTHREADS * (STACK_TOUCH + 1 * MB));
  CHECK_GT(os.smaps_file, 0);
  CHECK_EQ(os.threads, base.threads + NTHREADS);
  CHECK_GE(os.peak_rss, os.rss);
  CHECK_GE(os.vms, os.rss);
  CHECK_GT(os.minor_faults, 0);
  CHECK_GT(os.smaps_at_ms, 1700000000000ull);
  CHECK_GE(os.rss, 32 * MB);

  pthread_barrier_wait(&done);
  for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);

  /* 3. cadence. 100 ms later: statm is fresh, the breakdown is kept. */
  char *more = map_anon(24 * MB);
  vkm_os_t o2;
  vkm_os_sample(&o2, t0 + SEC / 10, 0);
  CHECK_GE(o2.rss, os.rss + 20 * MB);
  CHECK_EQ(o2.smaps_anon, os.smaps_anon);
  CHECK_EQ(o2.smaps_at_ms, os.smaps_at_ms);
  CHECK_EQ(o2.threads, os.threads);       /* status not re-read within the second */
  CHECK_EQ(o2.minor_faults, os.minor_faults);
  /* 1.2 s: status re-read; RSS drifted by > 10 %, so smaps is re-read too */
  usleep(2000);
  vkm_os_sample(&o2, t0 + 12 * SEC / 10, 0);
  CHECK_EQ(o2.threads, base.threads);
  CHECK_GT(o2.minor_faults, os.minor_faults);
  CHECK_GE(o2.smaps_anon, os.smaps_anon + 20 * MB);
  CHECK_NEAR((double)sum_smaps(&o2), (double)o2.rss, 0.05 * (double)o2.rss);
  /* freed memory shows in statm at once, in the breakdown only later */
  munmap(more, 24 * MB);
  vkm_os_t o3;
  vkm_os_sample(&o3, t0 + 13 * SEC / 10, 0);
  CHECK_LE(o3.rss, o2.rss - 20 * MB);
  CHECK_EQ(o3.smaps_anon, o2.smaps_anon);
  CHECK_GE(o3.peak_rss, o2.rss);          /* VmHWM remembers */
  /* 10 s after the last breakdown: re-read on schedule */
  usleep(2000);
  vkm_os_sample(&o3, t0 + 23 * SEC / 10 + 10 * SEC, 0);
  CHECK_LE(o3.smaps_anon, o2.smaps_anon - 20 * MB);
  CHECK_NEAR((double)sum_smaps(&o3), (double)o3.rss, 0.05 * (double)o3.rss);

  /* JSON */
  cJSON *obj = cJSON_CreateObject();
  vkm_os_json(&o3, obj);
  cJSON *j = cJSON_GetObjectItem(obj, "os");
  CHECK(j != NULL);
  CHECK_EQ(cJSON_GetObjectItem(j, "rss")->valuedouble, (double)o3.rss);
  CHECK_EQ(cJSON_GetObjectItem(j, "threads")->valuedouble, base.threads);
  cJSON *sm = cJSON_GetObjectItem(j, "smaps");
  CHECK(cJSON_IsObject(sm));
  CHECK_EQ(cJSON_GetObjectItem(sm, "anon")->valuedouble, (double)o3.smaps_anon);
  CHECK(cJSON_GetObjectItem(sm, "at_ms") != NULL);
  const char *keys[] = {"vms", "peak_rss", "minor_faults", "major_faults", "swap"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) CHECK(cJSON_IsNumber(cJSON_GetObjectItem(j, keys[i])));
  cJSON_Delete(obj);
  o3.have_smaps = 0;
  obj = cJSON_CreateObject();
  vkm_os_json(&o3, obj);
  CHECK(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(obj, "os"), "smaps")));
  cJSON_Delete(obj);

  munmap(big, 32 * MB);
  sbrk(-(intptr_t)(NSMALL * 1024));
}

/* vkm_plat_zero: the range reads as zero, the bytes around it are kept,
 * and whole pages inside went back to the kernel (resident no more), which
 * is what spares a forked child copying a table it only clears. */
static void test_plat_zero(void) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE), len = 8 * page;
  uint8_t *m = vkm_plat_map(len);
  CHECK(m != NULL);
  if (!m) return;
  memset(m, 0xab, len);
  size_t from = 100, to = len - 200; /* partial pages at both ends */
  vkm_plat_zero(m + from, to - from);
  size_t bad = 0;
  for (size_t i = 0; i < len; i++) bad += m[i] != (i >= from && i < to ? 0 : 0xab);
  CHECK_EQ(bad, 0);
  vkm_plat_zero(m, 8 * page); /* everything: now untouched again */
  unsigned char vec[8];
  CHECK_EQ(mincore(m, len, vec), 0);
  int resident = 0;
  for (int i = 0; i < 8; i++) resident += vec[i] & 1;
  CHECK_EQ(resident, 0);
  for (size_t i = 0; i < len; i += 512) bad += m[i] != 0;
  CHECK_EQ(bad, 0);
  vkm_plat_unmap(m, len);
}

int main(void) {
  test_plat_zero();
  test_planted_smaps();
  test_self();
  return check_done("live_os");
}
