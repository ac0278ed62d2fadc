/* gate_exit.c - exits with argv[1], or dies of signal argv[2] when given. */
#include <signal.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  if (argc > 2 && atoi(argv[2]) > 0) {
    signal(atoi(argv[2]), SIG_DFL);
    raise(atoi(argv[2]));
  }
  return argc > 1 ? atoi(argv[1]) : 0;
}
