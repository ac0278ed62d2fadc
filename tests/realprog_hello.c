/* realprog_hello.c - what gcc compiles under the shim in realprog_gcc.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node { struct node *next; int value; };

static int sum_list(int n) {
  struct node *head = NULL;
  for (int i = 0; i < n; i++) {
    struct node *x = malloc(sizeof *x);
    if (!x) return -1;
    x->value = i * 3;
    x->next = head;
    head = x;
  }
  int sum = 0;
  while (head) {
    struct node *next = head->next;
    sum += head->value;
    free(head);
    head = next;
  }
  return sum;
}

int main(void) {
  char buf[64];
  snprintf(buf, sizeof buf, "hello from %s", "gcc");
  printf("%s: %zu chars, sum %d\n", buf, strlen(buf), sum_list(1000));
  return 0;
}
