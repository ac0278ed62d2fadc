/* sites_symfuzz.c - the ELF/DWARF reader in symbols.c against malformed
 * files: this program's own binary with random bytes overwritten (section
 * headers, symbol tables, line programs, anywhere), truncated, and empty.
 * Every lookup must return without crashing or reading out of bounds (the
 * test is built with ASan/UBSan when no other sanitizer is selected), and
 * the intact file must give the right answers. */
#include "agent.h"
#include "check.h"
#include "symbols.h"

#include <dlfcn.h>
#include <elf.h>
#include <unistd.h>

static const unsigned target_line = __LINE__ + 1;
__attribute__((noinline)) static int target_function(int x) { return x * 3 + 1; }

static unsigned char *image;
static size_t image_len;

static int write_file(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t w = n ? fwrite(p, 1, n, f) : 0;
  fclose(f);
  return w == n ? 0 : -1;
}

int main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  image = (unsigned char *)check_slurp("/proc/self/exe", &image_len);
  CHECK(image != NULL && image_len > 4096);
  if (!image) return check_done("sites_symfuzz");
  /* The module-relative address of target_function: from its symbol. */
  char path[] = "/tmp/vkm_symfuzz_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  CHECK_EQ(write_file(path, image, image_len), 0);
  Dl_info di;
  CHECK(dladdr((void *)&main, &di) != 0);
  uint64_t rel = (uint64_t)((uintptr_t)&target_function - (uintptr_t)di.dli_fbase) + 2;
  vkm_sym_t s;
  CHECK_EQ(vkm_symbols_probe_file(path, rel, &s), 0);
  CHECK_STREQ(s.function, "target_function");
  CHECK_STREQ(s.file, "sites_symfuzz.c");
  CHECK_EQ(s.line, target_line);
  CHECK_EQ(target_function(1), 4);

  uint64_t rng = 0x9e3779b97f4a7c15ull;
  unsigned char *copy = malloc(image_len);
  unsigned found = 0;
  const int rounds = getenv("SYMFUZZ_ROUNDS") ? atoi(getenv("SYMFUZZ_ROUNDS")) : 400;
  /* .debug_line and .symtab of the intact image: targets for a third of the mutations */
  size_t hot_off[2] = {0, 0}, hot_len[2] = {1, 1};
  {
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)image;
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(image + eh->e_shoff);
    const char *names = (const char *)image + sh[eh->e_shstrndx].sh_offset;
    for (unsigned i = 0; i < eh->e_shnum; i++) {
      int which = strcmp(names + sh[i].sh_name, ".debug_line") == 0 ? 0 : sh[i].sh_type == SHT_SYMTAB ? 1 : -1;
      if (which >= 0) hot_off[which] = sh[i].sh_offset, hot_len[which] = sh[i].sh_size ? sh[i].sh_size : 1;
    }
    CHECK_GT(hot_off[0], 0);
  }
  for (int round = 0; round < rounds; round++) {
    memcpy(copy, image, image_len);
    size_t len = image_len;
    int muts = 1 + round % 64;
    for (int k = 0; k < muts; k++) {
      rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
      size_t at;
      if (k % 3 == 0) { /* the section header table and ELF header: most damage per byte */
        const Elf64_Ehdr *eh = (const Elf64_Ehdr *)image;
        size_t sh = eh->e_shoff, shlen = (size_t)eh->e_shnum * sizeof(Elf64_Shdr);
        at = sh + (rng >> 20) % (shlen ? shlen : 1);
        if (k % 9 == 0) at = (rng >> 20) % sizeof(Elf64_Ehdr);
      } else if (k % 3 == 1) {
        int w = (int)((rng >> 40) & 1);
        at = hot_off[w] + (rng >> 20) % hot_len[w];
      } else {
        at = (rng >> 20) % image_len;
      }
      if (at < len) copy[at] = (unsigned char)(rng >> 8);
    }
    if (round % 10 == 9) len = (size_t)((rng >> 24) % image_len); /* truncated */
    if (write_file(path, copy, len) != 0) continue;
    for (int q = 0; q < 8; q++) {
      rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
      uint64_t a = q == 0 ? rel : (rng >> 16) % (image_len * 2);
      if (vkm_symbols_probe_file(path, a, &s) == 0 && q == 0 && s.function &&
          strcmp(s.function, "target_function") == 0)
        found++;
    }
  }
  fprintf(stderr, "%d damaged files read; target still found in %u\n", rounds, found);
  CHECK_EQ(write_file(path, image, 0), 0); /* empty */
  CHECK_EQ(vkm_symbols_probe_file(path, rel, &s), -1);
  unlink(path);
  free(copy);
  free(image);
  return check_done("sites_symfuzz");
}
