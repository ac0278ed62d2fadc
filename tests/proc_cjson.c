/* proc_cjson.c - a program that uses cJSON itself, with cJSON's default
 * hooks: N objects built, printed and freed; the printed text released with
 * plain free(), as cJSON allows when the program has not changed its hooks.
 * A shim that changes cJSON's process-wide hooks breaks it (or hides its
 * allocations). usage: proc_cjson N */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 0;
  for (int i = 0; i < n; i++) {
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddNumberToObject(o, "i", i)) return 2;
    char *s = cJSON_PrintUnformatted(o);
    if (!s) return 3;
    puts(s);
    free(s);
    cJSON_Delete(o);
  }
  printf("objects %d\n", n);
  return 0;
}
