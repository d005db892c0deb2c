/* A C11 program on libugr: opens an artifact, recommends 10 items for each history given
 * on the command line (comma-separated item ids), prints "history rank item score
 * confidence" lines and the engine's backend. CI builds it for x86_64 and, with the aarch64
 * cross compiler, runs it under qemu-aarch64 and compares the two outputs.
 *
 *   cc -std=c11 -Iinclude examples/c/recommend.c -Ltarget/release -lugr -o recommend
 *   ./recommend tests/data/tiny-model.ugr 1,2,3 5
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ugr.h"

static size_t parse_history(const char *s, uint32_t *out, size_t cap) {
  size_t n = 0;
  while (*s && n < cap) {
    char *end = NULL;
    unsigned long v = strtoul(s, &end, 10);
    if (end == s) break;
    out[n++] = (uint32_t)v;
    s = (*end == ',') ? end + 1 : end;
  }
  return n;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s <model.ugr> <history> [history ...]\n", argv[0]);
    return 2;
  }
  struct ugr_engine *engine = NULL;
  ugr_status st = ugr_engine_open(argv[1], &engine);
  if (st != UGR_STATUS_OK) {
    fprintf(stderr, "%s: %s: %s\n", argv[1], ugr_status_name(st), ugr_last_error());
    return 1;
  }
  struct ugr_engine_info info;
  if (ugr_engine_get_info(engine, &info) == UGR_STATUS_OK) {
    printf("backend %s\n", info.backend == UGR_BACKEND_NATIVE ? "native" : "tract");
  }
  struct ugr_options opts = ugr_options_default();
  opts.k = 10;
  opts.beam = 20;
  for (int a = 2; a < argc; a++) {
    uint32_t history[64];
    size_t len = parse_history(argv[a], history, 64);
    struct ugr_recommendation out[10];
    size_t n = 0;
    st = ugr_recommend(engine, history, len, &opts, out, 10, &n);
    if (st != UGR_STATUS_OK) {
      fprintf(stderr, "history %s: %s: %s\n", argv[a], ugr_status_name(st), ugr_last_error());
      ugr_engine_free(engine);
      return 1;
    }
    for (size_t i = 0; i < n; i++) {
      printf("%s %zu %u %.6f %.6f\n", argv[a], i + 1, out[i].item, out[i].score, out[i].confidence);
    }
  }
  ugr_engine_free(engine);
  return 0;
}
