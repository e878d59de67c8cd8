/* How inspect shows what it found: lines for people, json-c objects for
 * programs.  The JSON names every field the human form shows, and more
 * (each variable's SHA-256, every certificate's fingerprint). */
#ifndef SP_INSPECT_OUTPUT_H
#define SP_INSPECT_OUTPUT_H

#include <json-c/json.h>
#include <stdio.h>

#include "inspect_diff.h"
#include "nvram_info.h"
#include "tpm_info.h"

void inspect_print_nvram(FILE *f, const struct nvram_info *ni);
void inspect_print_tpm(FILE *f, const struct tpm_info *ti);
void inspect_print_diff(FILE *f, const struct inspect_diff *d);

json_object *inspect_json_nvram(const struct nvram_info *ni);
json_object *inspect_json_tpm(const struct tpm_info *ti);
json_object *inspect_json_diff(const struct inspect_diff *d);

#endif
