/* pprof_unit.c - pprof.c: profiles written from a fixture report are read
 * back by a real consumer (go tool pprof) with the right top function for
 * each sample type; the gzip stream is valid (gzip -t), also when the
 * profile needs several stored blocks; folded stacks are exact. */
#include "agent.h"
#include "check.h"

#include <errno.h>
#include <unistd.h>

static const char *fixture =
    "{\"schema\":\"valkmem.report/1\",\"started_at\":1764172800000,\"duration_s\":12.5,\"sample_bytes\":524288,"
    "\"sites\":["
    "{\"id\":\"a1\",\"frames\":[{\"function\":\"leaky_cache_put\",\"module\":\"demo\",\"offset\":4660,"
    "\"file\":\"demo.c\",\"line\":42},{\"function\":\"handle_request\",\"module\":\"demo\",\"offset\":8000},"
    "{\"function\":\"main\",\"module\":\"demo\",\"offset\":9000}],"
    "\"alloc_bytes\":1000000,\"alloc_count\":100,\"live_bytes\":800000,\"live_count\":80},"
    "{\"id\":\"b2\",\"frames\":[{\"function\":\"parse;json\",\"module\":\"demo\",\"offset\":5000},"
    "{\"function\":\"handle_request\",\"module\":\"demo\",\"offset\":8004},"
    "{\"function\":\"main\",\"module\":\"demo\",\"offset\":9000}],"
    "\"alloc_bytes\":5000000,\"alloc_count\":5000,\"live_bytes\":1000,\"live_count\":1},"
    "{\"id\":\"c3\",\"frames\":[],\"alloc_bytes\":10,\"alloc_count\":1,\"live_bytes\":0,\"live_count\":0}"
    "]}";

static char dir[] = "/tmp/vkm_pprof_XXXXXX";

static int write_file(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t w = fwrite(p, 1, n, f);
  fclose(f);
  return w == n ? 0 : -1;
}

/* Runs `go tool pprof -top` offline and returns the function of the first
 * row (static buffer), or "" when pprof failed. */
static const char *pprof_top(const char *file, const char *sample_index) {
  static char top[256];
  char cmd[1024], line[512];
  snprintf(cmd, sizeof cmd,
           "HOME=%s GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local GOTELEMETRY=off PPROF_TMPDIR=%s "
           "go tool pprof -top %s%s %s 2>&1",
           dir, dir, sample_index ? "-sample_index=" : "", sample_index ? sample_index : "", file);
  top[0] = 0;
  FILE *p = popen(cmd, "r");
  if (!p) return top;
  int header_seen = 0;
  while (fgets(line, sizeof line, p)) {
    fputs(line, stderr);
    if (strstr(line, "flat%")) {
      header_seen = 1;
      continue;
    }
    if (header_seen && !top[0]) {
      char *last = strrchr(line, ' ');
      if (last) {
        snprintf(top, sizeof top, "%s", last + 1);
        top[strcspn(top, "\n")] = 0;
      }
    }
  }
  pclose(p);
  return top;
}

static void write_profile(const cJSON *rep, const char *type, const char *name, char *path, size_t len) {
  unsigned char *pb = NULL;
  size_t n = 0;
  CHECK_EQ(vkm_pprof_from_report(rep, type, &pb, &n), 0);
  CHECK_GT(n, 20);
  if (pb) {
    CHECK_EQ(pb[0], 0x1f);
    CHECK_EQ(pb[1], 0x8b);
  }
  snprintf(path, len, "%s/%s", dir, name);
  CHECK_EQ(write_file(path, pb, n), 0);
  vkm_free(pb);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "gzip -t %s", path);
  CHECK_EQ(system(cmd), 0);
}

static void test_profiles(void) {
  cJSON *rep = cJSON_Parse(fixture);
  CHECK(rep != NULL);
  char path[512];
  write_profile(rep, "inuse", "inuse.pb.gz", path, sizeof path);
  CHECK_STREQ(pprof_top(path, NULL), "leaky_cache_put");
  write_profile(rep, "alloc", "alloc.pb.gz", path, sizeof path);
  CHECK_STREQ(pprof_top(path, NULL), "parse;json");
  write_profile(rep, NULL, "all.pb.gz", path, sizeof path);
  CHECK_STREQ(pprof_top(path, "alloc_objects"), "parse;json");
  CHECK_STREQ(pprof_top(path, "inuse_space"), "leaky_cache_put");
  CHECK_STREQ(pprof_top(path, "inuse_objects"), "leaky_cache_put");

  unsigned char *pb = (unsigned char *)"x";
  size_t n = 1;
  CHECK_EQ(vkm_pprof_from_report(rep, "bogus", &pb, &n), -EINVAL);
  CHECK(pb == NULL && n == 0);

  char *folded = NULL;
  size_t flen = 0;
  CHECK_EQ(vkm_folded_from_report(rep, "alloc", &folded, &flen), 0);
  CHECK_STREQ(folded, "main;handle_request;leaky_cache_put 1000000\n"
                      "main;handle_request;parse:json 5000000\n"
                      "[unknown] 10\n");
  CHECK_EQ(flen, strlen(folded ? folded : ""));
  vkm_free(folded);
  CHECK_EQ(vkm_folded_from_report(rep, "inuse", &folded, &flen), 0);
  CHECK_STREQ(folded, "main;handle_request;leaky_cache_put 800000\n"
                      "main;handle_request;parse:json 1000\n");
  vkm_free(folded);
  cJSON_Delete(rep);
}

/* A profile larger than one stored block (64 KiB): 4000 sites. */
static void test_large(void) {
  cJSON *rep = cJSON_CreateObject();
  cJSON *sites = cJSON_AddArrayToObject(rep, "sites");
  for (int i = 0; i < 4000; i++) {
    cJSON *s = cJSON_CreateObject(), *fr = cJSON_AddArrayToObject(s, "frames");
    char name[64];
    snprintf(name, sizeof name, "function_number_%d", i);
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "function", name);
    cJSON_AddStringToObject(f, "module", "big");
    cJSON_AddNumberToObject(f, "offset", 4096 + i * 16);
    cJSON_AddItemToArray(fr, f);
    cJSON_AddNumberToObject(s, "alloc_bytes", 1000 + i);
    cJSON_AddNumberToObject(s, "alloc_count", 1);
    cJSON_AddNumberToObject(s, "live_bytes", i == 1234 ? 99999999 : 1000 + i);
    cJSON_AddNumberToObject(s, "live_count", 1);
    cJSON_AddItemToArray(sites, s);
  }
  char path[512];
  write_profile(rep, "inuse", "big.pb.gz", path, sizeof path);
  FILE *f = fopen(path, "rb");
  long size = 0;
  if (f) {
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fclose(f);
  }
  CHECK_GT(size, 65535 + 18); /* really several blocks */
  CHECK_STREQ(pprof_top(path, NULL), "function_number_1234");
  cJSON_Delete(rep);
}

int main(void) {
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  test_profiles();
  test_large();
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return check_done("pprof_unit");
}
