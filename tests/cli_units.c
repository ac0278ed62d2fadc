/* cli_units.c - the launcher's pure parts against known truth, no shim:
 * size/count/percent/tolerance parsing, LSan suppression matching and
 * parsing, config files, JSON error locations, report import, the gate's
 * verdicts (limits, suppressions, baseline tolerance), and the escaping of
 * XML, GitHub workflow commands and Markdown. */
#include "check.h"
#include "cli/cli.h"

#include <errno.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------
 * Sizes
 * ------------------------------------------------------------------------- */
static void test_sizes(void) {
  static const struct {
    const char *s;
    uint64_t v;
  } good[] = {
      {"0", 0},
      {"100", 100},
      {"100B", 100},
      {"100 b", 100},
      {"24 MB", 24000000},
      {"24MB", 24000000},
      {"24 MiB", 24ull << 20},
      {"24M", 24ull << 20},
      {"512KiB", 512 * 1024},
      {"512kib", 512 * 1024},
      {"512K", 512 * 1024},
      {"512kB", 512000},
      {"512 KB", 512000},
      {"1.5GB", 1500000000},
      {"1.5GiB", 3ull << 29},
      {"1.5KiB", 1536},
      {"0.5 MB", 500000},
      {"1.0", 1},
      {"2.000 B", 2},
      {" 7 ", 7},
      {"1TB", 1000000000000ull},
      {"1 TiB", 1ull << 40},
      {"1PiB", 1ull << 50},
      {"15EiB", 15ull << 60},
      {"18446744073709551615", UINT64_MAX},
      {"0.0000001 KiB", 0},
      {"1.999 KiB", 2046}, /* 2046.976 rounds down */
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    uint64_t v = 12345;
    const char *why = NULL;
    int rc = vkm_parse_size(good[i].s, &v, &why);
    if (rc != 0) fprintf(stderr, "size \"%s\": %s\n", good[i].s, why);
    CHECK_EQ(rc, 0);
    CHECK_EQ(v, good[i].v);
  }
  static const struct {
    const char *s;
    const char *why_has;
  } bad[] = {
      {"", "empty"},
      {"   ", "empty"},
      {"-1", "negative"},
      {"-0", "negative"},
      {"+5", "sign"},
      {"MB", "digit"},
      {"1.5", "whole number"},
      {"0.5 B", "whole number"},
      {"1.", "after the decimal point"},
      {".5MB", "digit"},
      {"24 XB", "unknown unit"},
      {"24 megabytes", "unknown unit"},
      {"24 MB extra", "unexpected text"},
      {"1e6", "unknown unit"},
      {"18446744073709551616", "too large"},
      {"16EiB", "too large"},
      {"17179869184 GiB", "too large"},
      {"99999999999999999999999", "too large"},
      {"nan", "digit"},
      {"inf", "digit"},
      {"0x10", "unknown unit"},
      {"1,5MB", "unknown unit"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint64_t v;
    const char *why = NULL;
    int rc = vkm_parse_size(bad[i].s, &v, &why);
    if (rc == 0) fprintf(stderr, "size \"%s\" accepted as %llu\n", bad[i].s, (unsigned long long)v);
    CHECK(rc < 0);
    CHECK(why != NULL);
    if (why && !strstr(why, bad[i].why_has)) {
      fprintf(stderr, "size \"%s\": reason \"%s\" lacks \"%s\"\n", bad[i].s, why, bad[i].why_has);
      CHECK(0);
    }
  }
  uint64_t v;
  const char *why;
  CHECK_EQ(vkm_parse_count("1000", &v, &why), 0);
  CHECK_EQ(v, 1000);
  CHECK(vkm_parse_count("10k", &v, &why) < 0);
  CHECK(vkm_parse_count("-3", &v, &why) < 0);
  CHECK(vkm_parse_count("", &v, &why) < 0);
  CHECK(vkm_parse_count("1.5", &v, &why) < 0);
  double p;
  uint64_t ab;
  CHECK_EQ(vkm_parse_tolerance("10", &p, &ab, &why), 0);
  CHECK_NEAR(p, 10, 1e-9);
  CHECK_EQ(ab, 0);
  CHECK_EQ(vkm_parse_tolerance("2.5%,64KiB", &p, &ab, &why), 0);
  CHECK_NEAR(p, 2.5, 1e-9);
  CHECK_EQ(ab, 65536);
  CHECK(vkm_parse_tolerance("-10", &p, &ab, &why) < 0);
  CHECK(vkm_parse_tolerance("10,", &p, &ab, &why) < 0);
  CHECK(vkm_parse_tolerance("ten", &p, &ab, &why) < 0);
  CHECK(vkm_parse_tolerance("10,-1", &p, &ab, &why) < 0);
  char buf[64];
  CHECK_STREQ(vkm_fmt_size(0, buf, sizeof buf), "0 B");
  CHECK_STREQ(vkm_fmt_size(1023, buf, sizeof buf), "1023 B");
  CHECK_STREQ(vkm_fmt_size(1536, buf, sizeof buf), "1.50 KiB");
  CHECK_STREQ(vkm_fmt_size(24ull << 20, buf, sizeof buf), "24.0 MiB");
  CHECK_STREQ(vkm_fmt_delta(-2048, buf, sizeof buf), "-2.00 KiB");
}

/* ---------------------------------------------------------------------------
 * Suppressions
 * ------------------------------------------------------------------------- */
static void test_suppressions(void) {
  /* LSan TemplateMatch semantics. */
  CHECK(vkm_supp_match("cache_put", "lru_cache_put"));
  CHECK(vkm_supp_match("cache_put", "cache_put_all"));
  CHECK(!vkm_supp_match("^cache_put", "lru_cache_put"));
  CHECK(vkm_supp_match("^cache_put", "cache_put_all"));
  CHECK(!vkm_supp_match("cache_put$", "cache_put_all"));
  CHECK(vkm_supp_match("^cache_put$", "cache_put"));
  CHECK(!vkm_supp_match("^cache_put$", "cache_puts"));
  CHECK(vkm_supp_match("^_dl_*object$", "_dl_new_object"));
  CHECK(!vkm_supp_match("^_dl_*object$", "_dl_new_objects"));
  CHECK(vkm_supp_match("a*b*c", "xxaYYbZZcxx"));
  CHECK(!vkm_supp_match("a*b*c", "xxcYYbZZa"));
  CHECK(vkm_supp_match("*", "x"));
  CHECK(!vkm_supp_match("x", ""));
  CHECK(vkm_supp_match("libfoo.so", "/usr/lib/libfoo.so.1"));

  vkm_supp_list_t l = {0};
  char err[256] = "";
  const char *text = "# comment\n\n  leak:leaky_put  \r\nleak:^libfoo.so\n";
  CHECK_EQ(vkm_supp_parse(&l, text, strlen(text), "s.supp", err, sizeof err), 0);
  CHECK_EQ(l.n, 2);
  CHECK_STREQ(l.v[0].pattern, "leaky_put");
  CHECK_STREQ(l.v[0].source, "s.supp:3");
  CHECK_STREQ(l.v[1].pattern, "^libfoo.so");
  const char *bad1 = "leak:ok\nrace:foo\n";
  CHECK(vkm_supp_parse(&l, bad1, strlen(bad1), "s.supp", err, sizeof err) < 0);
  CHECK(strstr(err, "line 2") != NULL);
  CHECK(strstr(err, "race") != NULL);
  const char *bad2 = "\n\nleak:\n";
  CHECK(vkm_supp_parse(&l, bad2, strlen(bad2), "s.supp", err, sizeof err) < 0);
  CHECK(strstr(err, "line 3") != NULL);
  CHECK(strstr(err, "empty pattern") != NULL);
  const char *bom = "\xef\xbb\xbfleak:leaky_put\n";
  vkm_supp_list_t lb = {0};
  CHECK_EQ(vkm_supp_parse(&lb, bom, strlen(bom), "bom.supp", err, sizeof err), 0);
  CHECK_EQ(lb.n, 1);
  if (lb.n == 1) CHECK_STREQ(lb.v[0].pattern, "leaky_put");
  const char *bad3 = "leaky_put\n";
  CHECK(vkm_supp_parse(&l, bad3, strlen(bad3), "s.supp", err, sizeof err) < 0);
  CHECK(strstr(err, "line 1") != NULL);

  /* Frames: function, module (path and basename), file. */
  cJSON *site = cJSON_Parse("{\"frames\":[{\"function\":\"malloc_wrapper\",\"module\":\"/usr/lib/libfoo.so.1\"},"
                            "{\"function\":\"leaky_put\",\"module\":\"/tmp/app\",\"file\":\"/src/app/cache.c\",\"line\":3}]}");
  CHECK_EQ(vkm_supp_find(&l, site), 0); /* leaky_put */
  vkm_supp_list_t l2 = {0};
  vkm_supp_add(&l2, "^libfoo.so", "t");
  CHECK_EQ(vkm_supp_find(&l2, site), 0); /* module basename */
  vkm_supp_add(&l2, "cache.c", "t");
  vkm_supp_list_t l3 = {0};
  vkm_supp_add(&l3, "nothing", "t");
  vkm_supp_add(&l3, "cache.c", "t");
  CHECK_EQ(vkm_supp_find(&l3, site), 1); /* source file */
  vkm_supp_list_t l4 = {0};
  vkm_supp_add(&l4, "^leaky$", "t");
  CHECK_EQ(vkm_supp_find(&l4, site), -1);
  cJSON_Delete(site);
  /* The built-in rule for stacks entirely inside the C/C++ runtime. */
  vkm_supp_list_t d = {0};
  vkm_supp_add_defaults(&d);
  cJSON *rt = cJSON_Parse("{\"frames\":[{\"function\":\"libstdc++.so.6+0xa57b9\",\"module\":\"libstdc++.so.6\"},"
                          "{\"function\":\"ld-linux-x86-64.so.2+0x4a1d\",\"module\":\"/lib64/ld-linux-x86-64.so.2\"}]}");
  int k = vkm_supp_find(&d, rt);
  CHECK(k >= 0 && d.v[k].system_only);
  cJSON *app = cJSON_Parse("{\"frames\":[{\"function\":\"libstdc++.so.6+0x1\",\"module\":\"libstdc++.so.6\"},"
                           "{\"function\":\"make_cache\",\"module\":\"app\"},"
                           "{\"function\":\"x\",\"module\":\"libc.so.6\"}]}");
  CHECK_EQ(vkm_supp_find(&d, app), -1); /* one frame of the program's own: not suppressed */
  cJSON *nomod = cJSON_Parse("{\"frames\":[{\"function\":\"f\"}]}");
  CHECK_EQ(vkm_supp_find(&d, nomod), -1);
  cJSON *pw = cJSON_Parse("{\"frames\":[{\"function\":\"getpwuid\",\"module\":\"libc.so.6\"},"
                          "{\"function\":\"main\",\"module\":\"app\"}]}");
  CHECK(vkm_supp_find(&d, pw) >= 0);
  cJSON_Delete(rt);
  cJSON_Delete(app);
  cJSON_Delete(nomod);
  cJSON_Delete(pw);
  vkm_supp_free(&d);
  vkm_supp_free(&l);
  vkm_supp_free(&l2);
  vkm_supp_free(&l3);
  vkm_supp_free(&l4);
}

/* ---------------------------------------------------------------------------
 * JSON errors and config
 * ------------------------------------------------------------------------- */
static void test_json_and_config(void) {
  char err[256];
  const char *t = "{\n  \"max_leak\": \"0\",\n  \"max_peak\" \"24 MB\"\n}";
  CHECK(vkm_cli_json_parse(t, strlen(t), err, sizeof err) == NULL);
  CHECK(strstr(err, "line 3") != NULL);
  const char *t2 = "{} trailing";
  CHECK(vkm_cli_json_parse(t2, strlen(t2), err, sizeof err) == NULL);
  CHECK(strstr(err, "line 1, column 4") != NULL);
  CHECK(vkm_cli_json_parse("", 0, err, sizeof err) == NULL);
  CHECK(strstr(err, "empty") != NULL);
  const char *t3 = "{\"a\": [1, 2";
  CHECK(vkm_cli_json_parse(t3, strlen(t3), err, sizeof err) == NULL);
  CHECK(strstr(err, "end of input") != NULL || strstr(err, "line 1") != NULL);

  vkm_gate_opts_t o;
  memset(&o, 0, sizeof o);
  bool cmdline[VKM_OPT_COUNT] = {0};
  cmdline[VKM_LIM_PEAK] = true; /* --max-peak given on the command line: the file must not override */
  o.set[VKM_LIM_PEAK] = true;
  o.limit[VKM_LIM_PEAK] = 5;
  cJSON *cfg = cJSON_Parse("{\"max_leak\": \"0\", \"max_peak\": \"24 MB\", \"max_allocs\": 1000,"
                           " \"max_rss\": 1048576, \"suppressions\": [\"leak:foo\", \"leak:^bar$\"],"
                           " \"baseline\": \"base.json\", \"tolerance\": \"15,1KiB\", \"error_exitcode\": 42,"
                           " \"sampled\": true, \"default_suppressions\": false, \"_note\": 1}");
  CHECK_EQ(vkm_config_apply(cfg, &o, cmdline, "/etc/ci", err, sizeof err), 0);
  cJSON_Delete(cfg);
  CHECK(o.set[VKM_LIM_LEAK]);
  CHECK_EQ(o.limit[VKM_LIM_LEAK], 0);
  CHECK_EQ(o.limit[VKM_LIM_PEAK], 5);
  CHECK_EQ(o.limit[VKM_LIM_ALLOCS], 1000);
  CHECK_EQ(o.limit[VKM_LIM_RSS], 1048576);
  CHECK_EQ(o.supp.n, 2);
  CHECK_STREQ(o.supp.v[1].pattern, "^bar$");
  CHECK_STREQ(o.supp.v[1].source, "config suppressions[1]");
  CHECK_STREQ(o.baseline, "/etc/ci/base.json");
  CHECK_NEAR(o.tol_pct, 15, 1e-9);
  CHECK_EQ(o.tol_abs, 1024);
  CHECK_EQ(o.error_exitcode, 42);
  CHECK(o.sampled);
  CHECK(o.no_default_supp);
  static const struct {
    const char *json, *has;
  } bad[] = {
      {"{\"max_peak\": \"-1 MB\"}", "max_peak"},
      {"{\"max_peak\": \"12 parsecs\"}", "unknown unit"},
      {"{\"max_allocs\": \"1.5\"}", "max_allocs"},
      {"{\"max_allocs\": -1}", "max_allocs"},
      {"{\"max_leak\": true}", "max_leak"},
      {"{\"max_lek\": \"0\"}", "unknown key \"max_lek\""},
      {"{\"suppressions\": \"leak:x\"}", "suppressions"},
      {"{\"suppressions\": [\"race:x\"]}", "suppressions\"[0]"},
      {"{\"suppressions\": [\"leak:a\", \"\"]}", "suppressions\"[1]"},
      {"{\"tolerance\": \"x\"}", "tolerance"},
      {"{\"error_exitcode\": 0}", "error_exitcode"},
      {"{\"sampled\": \"yes\"}", "sampled"},
      {"[1, 2]", "not a JSON object"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    vkm_gate_opts_t b;
    memset(&b, 0, sizeof b);
    bool none[VKM_OPT_COUNT] = {0};
    cJSON *c = cJSON_Parse(bad[i].json);
    err[0] = 0;
    CHECK(vkm_config_apply(c, &b, none, ".", err, sizeof err) < 0);
    if (!strstr(err, bad[i].has)) {
      fprintf(stderr, "config %s: message \"%s\" lacks \"%s\"\n", bad[i].json, err, bad[i].has);
      CHECK(0);
    }
    cJSON_Delete(c);
    vkm_supp_free(&b.supp);
    free(b.baseline);
  }
  vkm_supp_free(&o.supp);
  free(o.baseline);
}

/* ---------------------------------------------------------------------------
 * Reports and the gate's verdicts
 * ------------------------------------------------------------------------- */
static cJSON *make_report(uint64_t peak, uint64_t allocs, uint64_t alloc_bytes, uint64_t leak_live,
                          uint64_t libc_live, uint64_t other_alloc) {
  char buf[4096];
  snprintf(buf, sizeof buf,
           "{\"schema\":\"valkmem.report/1\",\"state\":\"exited\",\"sample_bytes\":1,"
           "\"totals\":{\"alloc_count\":%llu,\"alloc_bytes\":%llu,\"free_count\":1},"
           "\"live\":{\"bytes\":%llu,\"count\":2},"
           "\"peak\":{\"live_bytes\":%llu,\"live_error_bytes\":0,\"rss_bytes\":4000000},"
           "\"sites\":["
           "{\"id\":\"a\",\"frames\":[{\"function\":\"leaky_put\",\"module\":\"/t/app\",\"file\":\"/ws/src/leak.c\",\"line\":12},"
           "{\"function\":\"main\",\"module\":\"/t/app\"}],\"alloc_bytes\":%llu,\"alloc_count\":10,\"live_bytes\":%llu,\"live_count\":1},"
           "{\"id\":\"b\",\"frames\":[{\"function\":\"_IO_file_doallocate\",\"module\":\"/lib/libc.so.6\"},"
           "{\"function\":\"main\",\"module\":\"/t/app\"}],\"alloc_bytes\":1024,\"alloc_count\":1,\"live_bytes\":%llu,\"live_count\":1},"
           "{\"id\":\"c\",\"frames\":[{\"function\":\"churn\",\"module\":\"/t/app\"},"
           "{\"function\":\"main\",\"module\":\"/t/app\"}],\"alloc_bytes\":%llu,\"alloc_count\":100,\"live_bytes\":0,\"live_count\":0},"
           "{\"id\":\"d\",\"frames\":[{\"function\":\"churn\",\"module\":\"/t/app\"},"
           "{\"function\":\"main\",\"module\":\"/t/app\"}],\"alloc_bytes\":%llu,\"alloc_count\":100,\"live_bytes\":0,\"live_count\":0}"
           "]}",
           (unsigned long long)allocs, (unsigned long long)alloc_bytes, (unsigned long long)(leak_live + libc_live),
           (unsigned long long)peak, (unsigned long long)(leak_live * 4), (unsigned long long)leak_live,
           (unsigned long long)libc_live, (unsigned long long)other_alloc, (unsigned long long)other_alloc);
  return cJSON_Parse(buf);
}

static const vkm_check_t *find_check(const vkm_gate_result_t *res, const char *name) {
  for (size_t i = 0; i < res->n; i++)
    if (strcmp(res->checks[i].name, name) == 0) return &res->checks[i];
  return NULL;
}

static void test_report_import(void) {
  vkm_report_t r;
  char err[256];
  CHECK_EQ(vkm_report_from_json(make_report(1000, 50, 5000, 300, 1024, 100), &r, err, sizeof err), 0);
  CHECK_EQ(r.nsites, 4);
  CHECK_EQ(r.peak_live_bytes, 1000);
  CHECK_EQ(r.alloc_count, 50);
  CHECK_EQ(r.live_bytes, 1324);
  CHECK_STREQ(r.sites[0].key, "leaky_put <- main");
  CHECK_EQ(r.sites[0].live_bytes, 300);
  vkm_report_free(&r);
  static const struct {
    const char *json, *has;
  } bad[] = {
      {"{\"totals\":{}}", "schema"},
      {"{\"schema\":\"other/1\",\"totals\":{}}", "valkmem."},
      {"{\"schema\":\"valkmem.report/2\",\"totals\":{}}", "unsupported"},
      {"{\"schema\":\"valkmem.\",\"totals\":{}}", "unsupported"},
      {"{\"schema\":5}", "schema"},
      {"{\"schema\":\"valkmem.report/1\"}", "totals"},
      {"{\"schema\":\"valkmem.report/1\",\"totals\":[]}", "totals"},
      {"{\"schema\":\"valkmem.report/1\",\"totals\":{\"alloc_count\":-5}}", "totals.alloc_count"},
      {"{\"schema\":\"valkmem.report/1\",\"totals\":{\"alloc_count\":\"5\"}}", "totals.alloc_count"},
      {"{\"schema\":\"valkmem.report/1\",\"totals\":{},\"sites\":{}}", "sites"},
      {"{\"schema\":\"valkmem.report/1\",\"totals\":{},\"sites\":[1]}", "sites[0]"},
      {"{\"schema\":\"valkmem.report/1\",\"totals\":{},\"sites\":[{\"frames\":5}]}", "sites[0].frames"},
      {"{\"schema\":\"valkmem.report/1\",\"totals\":{},\"sites\":[{\"live_bytes\":-1}]}", "sites[0].live_bytes"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = 0;
    CHECK(vkm_report_from_json(cJSON_Parse(bad[i].json), &r, err, sizeof err) < 0);
    if (!strstr(err, bad[i].has)) {
      fprintf(stderr, "report %s: message \"%s\" lacks \"%s\"\n", bad[i].json, err, bad[i].has);
      CHECK(0);
    }
    vkm_report_free(&r);
  }
}

static void test_gate_eval(void) {
  char err[256];
  vkm_report_t r;
  CHECK_EQ(vkm_report_from_json(make_report(100000, 50, 5000, 300, 1024, 100), &r, err, sizeof err), 0);

  /* --max-leak 0 with default suppressions: the libc stdio buffer is
   * suppressed, the 300-byte leak in leaky_put fails and is named. */
  vkm_gate_opts_t o;
  memset(&o, 0, sizeof o);
  o.set[VKM_LIM_LEAK] = true;
  o.limit[VKM_LIM_LEAK] = 0;
  o.set[VKM_LIM_ALLOCS] = true;
  o.limit[VKM_LIM_ALLOCS] = 50;
  o.set[VKM_LIM_PEAK] = true;
  o.limit[VKM_LIM_PEAK] = 99999;
  vkm_supp_add_defaults(&o.supp);
  vkm_gate_result_t res;
  vkm_gate_evaluate(&o, &o.supp, &r, NULL, &res);
  CHECK_EQ(res.n, 3);
  CHECK_EQ(res.failures, 2);
  CHECK_EQ(res.leak_bytes, 300);
  CHECK_EQ(res.suppressed_bytes, 1024);
  const vkm_check_t *c = find_check(&res, "max-leak");
  CHECK(c && !c->ok);
  CHECK(c && strstr(c->detail, "leaky_put") != NULL);
  CHECK(c && strstr(c->detail, "/ws/src/leak.c:12") != NULL);
  CHECK(c && strcmp(c->file, "/ws/src/leak.c") == 0 && c->line == 12);
  c = find_check(&res, "max-allocs");
  CHECK(c && c->ok && c->measured == 50); /* exactly at the limit passes */
  c = find_check(&res, "max-peak");
  CHECK(c && !c->ok && c->measured == 100000);
  size_t matched = 0;
  for (size_t i = 0; i < o.supp.n; i++)
    if (o.supp.v[i].sites) {
      matched++;
      CHECK_STREQ(o.supp.v[i].pattern, "^_IO_file_doallocate$");
      CHECK_EQ(o.supp.v[i].bytes, 1024);
    }
  CHECK_EQ(matched, 1);

  /* Outputs on this failing result. */
  char *argvv[] = {"./app", "arg with space", NULL};
  vkm_gate_run_t run = {.argv = argvv};
  char *x = vkm_gate_junit(&res, &run, 1.5);
  CHECK(strstr(x, "tests=\"3\" failures=\"2\" errors=\"0\"") != NULL);
  CHECK(strstr(x, "<testcase name=\"max-allocs\" classname=\"valkmem.gate\" time=\"0\"/>") != NULL);
  CHECK(strstr(x, "<failure type=\"max-leak\"") != NULL);
  char path[] = "/tmp/cli_units_junit_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd >= 0) {
    CHECK_EQ(write(fd, x, strlen(x)), (int64_t)strlen(x));
    close(fd);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import sys,xml.etree.ElementTree as E; r=E.parse(sys.argv[1]).getroot(); "
             "s=r.find(\"testsuite\"); f=len(s.findall(\"testcase/failure\")); "
             "sys.exit(0 if f==2 and s.get(\"failures\")==\"2\" and len(s.findall(\"testcase\"))==3 else 1)' %s",
             path);
    CHECK_EQ(system(cmd), 0);
    unlink(path);
  }
  free(x);
  x = vkm_gate_annotations(&res, &run, "/ws");
  CHECK(strstr(x, "::error file=src/leak.c,line=12,title=valkmem gate%3A max-leak::max-leak: ") != NULL);
  CHECK(strstr(x, "%0A") != NULL);
  int lines = 0;
  for (const char *p = x; *p; p++) lines += *p == '\n';
  CHECK_EQ(lines, 2);
  free(x);
  x = vkm_gate_step_summary(&res, &run, &o.supp);
  CHECK(strstr(x, "| max-leak | 300 B | 0 B |  | **FAIL** |") != NULL);
  CHECK(strstr(x, "| leak:^_IO_file_doallocate$ | default | 1 | 1024 |") != NULL);
  free(x);
  x = vkm_gate_benchmark_json(&r, &res);
  cJSON *bj = cJSON_Parse(x);
  CHECK(cJSON_IsArray(bj) && cJSON_GetArraySize(bj) == 5);
  CHECK_STREQ(cJSON_GetObjectItem(cJSON_GetArrayItem(bj, 2), "name")->valuestring, "leak at exit");
  CHECK_EQ(cJSON_GetObjectItem(cJSON_GetArrayItem(bj, 2), "value")->valuedouble, 300);
  cJSON_Delete(bj);
  free(x);
  vkm_gate_json(r.root, &o, &o.supp, &res, &run, 3);
  cJSON *g = cJSON_GetObjectItem(r.root, "gate");
  CHECK_STREQ(cJSON_GetObjectItem(g, "result")->valuestring, "fail");
  CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(g, "suppressions")) == (int)o.supp.n);
  vkm_gate_result_free(&res);

  /* A user suppression for the leak makes it pass. */
  vkm_supp_free(&o.supp);
  vkm_supp_add(&o.supp, "leaky_put", "user");
  vkm_supp_add_defaults(&o.supp);
  o.set[VKM_LIM_PEAK] = false;
  vkm_gate_evaluate(&o, &o.supp, &r, NULL, &res);
  CHECK_EQ(res.failures, 0);
  CHECK_EQ(res.leak_bytes, 0);
  CHECK_EQ(o.supp.v[0].bytes, 300);
  vkm_gate_result_free(&res);
  vkm_supp_free(&o.supp);

  /* --no-default-suppressions: the stdio buffer now counts. */
  memset(&o, 0, sizeof o);
  o.set[VKM_LIM_LEAK] = true;
  o.limit[VKM_LIM_LEAK] = 1323;
  vkm_gate_evaluate(&o, &o.supp, &r, NULL, &res);
  CHECK_EQ(res.leak_bytes, 1324);
  CHECK_EQ(res.failures, 1);
  vkm_gate_result_free(&res);
  /* Per-site: 1024 B (libc) is the largest site. */
  memset(&o, 0, sizeof o);
  o.set[VKM_LIM_LEAK_PER_SITE] = true;
  o.limit[VKM_LIM_LEAK_PER_SITE] = 1024;
  vkm_gate_evaluate(&o, &o.supp, &r, NULL, &res);
  CHECK_EQ(res.failures, 0);
  vkm_gate_result_free(&res);
  o.limit[VKM_LIM_LEAK_PER_SITE] = 1023;
  vkm_gate_evaluate(&o, &o.supp, &r, NULL, &res);
  CHECK_EQ(res.failures, 1);
  CHECK(strstr(res.checks[0].detail, "_IO_file_doallocate") != NULL);
  CHECK(strstr(res.checks[0].detail, "leaky_put") == NULL); /* 300 B is under the limit */
  vkm_gate_result_free(&res);
  vkm_report_free(&r);

  /* Baseline: 20 % growth of everything fails at 10 %, passes at 30 %. */
  vkm_report_t base, now;
  CHECK_EQ(vkm_report_from_json(make_report(100000, 1000, 500000, 10000, 1024, 50000), &base, err, sizeof err), 0);
  CHECK_EQ(vkm_report_from_json(make_report(120000, 1200, 600000, 12000, 1024, 60000), &now, err, sizeof err), 0);
  memset(&o, 0, sizeof o);
  vkm_supp_add_defaults(&o.supp);
  o.baseline = "base";
  o.have_tolerance = true;
  o.tol_pct = 10;
  vkm_gate_evaluate(&o, &o.supp, &now, &base, &res);
  CHECK_EQ(res.n, 7);
  CHECK_EQ(res.failures, 6); /* peak, leak, allocs, alloc-bytes, site-live, site-alloc; rss unchanged */
  c = find_check(&res, "baseline:rss");
  CHECK(c && c->ok);
  c = find_check(&res, "baseline:peak");
  CHECK(c && !c->ok && c->limit == 110000 && c->baseline == 100000);
  c = find_check(&res, "baseline:site-alloc");
  CHECK(c && !c->ok && strstr(c->detail, "churn <- main") != NULL);
  c = find_check(&res, "baseline:site-live");
  CHECK(c && !c->ok && strstr(c->detail, "leaky_put") != NULL && c->measured == 12000 && c->baseline == 10000);
  vkm_gate_result_free(&res);
  o.tol_pct = 30;
  vkm_gate_evaluate(&o, &o.supp, &now, &base, &res);
  CHECK_EQ(res.failures, 0);
  vkm_gate_result_free(&res);
  /* The absolute floor: 10 % but at least 64 KiB of growth tolerated. */
  o.tol_pct = 10;
  o.tol_abs = 65536;
  vkm_gate_evaluate(&o, &o.supp, &now, &base, &res);
  c = find_check(&res, "baseline:alloc-bytes"); /* +100000 B > 64 KiB and > 10 % */
  CHECK(c && !c->ok);
  c = find_check(&res, "baseline:peak"); /* +20000 B < 64 KiB */
  CHECK(c && c->ok);
  vkm_gate_result_free(&res);
  vkm_supp_free(&o.supp);
  vkm_report_free(&base);
  vkm_report_free(&now);
}

/* ---------------------------------------------------------------------------
 * Escaping
 * ------------------------------------------------------------------------- */
static void test_escaping(void) {
  vkm_buf_t b = {0};
  vkm_gh_escape_data(&b, "50% of a:b,c\r\nnext");
  CHECK_STREQ(b.p, "50%25 of a:b,c%0D%0Anext");
  vkm_buf_free(&b);
  vkm_gh_escape_property(&b, "50% of a:b,c\r\nnext");
  CHECK_STREQ(b.p, "50%25 of a%3Ab%2Cc%0D%0Anext");
  vkm_buf_free(&b);
  vkm_xml_escape(&b, "a<b>&\"c'\n\x01\xff ok \xc3\xa9");
  CHECK_STREQ(b.p, "a&lt;b&gt;&amp;&quot;c&apos;&#10;\xEF\xBF\xBD\xEF\xBF\xBD ok \xc3\xa9");
  vkm_buf_free(&b);
  vkm_md_escape(&b, "operator<<|x");
  CHECK_STREQ(b.p, "operator&lt;&lt;\\|x");
  vkm_buf_free(&b);
}

int main(void) {
  test_sizes();
  test_suppressions();
  test_json_and_config();
  test_report_import();
  test_gate_eval();
  test_escaping();
  return check_done("cli_units");
}
