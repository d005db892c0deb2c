/* ugr.h as C11: included twice, strict warnings, version macros against the library,
   and a real call through the static library. */
#include "ugr.h"
#include "ugr.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    char expected[64];
    snprintf(expected, sizeof expected, "%d.%d.%d", UGR_VERSION_MAJOR, UGR_VERSION_MINOR, UGR_VERSION_PATCH);
    if (strcmp(expected, ugr_version()) != 0) {
        fprintf(stderr, "header says %s, library says %s\n", expected, ugr_version());
        return 1;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: header_c11 MODEL\n");
        return 2;
    }
    ugr_engine *engine = NULL;
    ugr_status status = ugr_engine_open(argv[1], &engine);
    if (status != UGR_STATUS_OK) {
        fprintf(stderr, "%s: %s\n", ugr_status_name(status), ugr_last_error());
        return 1;
    }
    const uint32_t history[] = {1, 2, 3};
    ugr_options options = ugr_options_default();
    options.k = 5;
    ugr_recommendation out[5];
    size_t n = 0;
    status = ugr_recommend(engine, history, 3, &options, out, 5, &n);
    ugr_engine_free(engine);
    if (status != UGR_STATUS_OK || n != 5) {
        fprintf(stderr, "recommend: %s (%zu items): %s\n", ugr_status_name(status), n, ugr_last_error());
        return 1;
    }
    printf("C11 libugr %s: top item %u, confidence %.3f\n", ugr_version(), out[0].item,
           (double)out[0].confidence);
    return 0;
}
