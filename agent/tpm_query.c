#include "tpm_query.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tcti_swtpm.h>

#include "cleanup.h"
#include "sha256.h"
#include "swtpm_copy.h"
#include "tpm_probe.h"
#include "xalloc.h"

enum { CONNECT_MS = 10000, HANDLES_MAX = 4096 };

/* Handle ranges (Part 2, 7.2); tss2's TPM2_HR_* shift a signed int into its
 * sign bit. */
#define HR_NV_INDEX 0x01000000u
#define HR_PERSISTENT 0x81000000u
#define HR_RANGE_MASK 0xFF000000u

struct query {
  struct swtpm_copy swtpm;
  TSS2_TCTI_CONTEXT *tcti;
  ESYS_CONTEXT *esys;
  uint32_t nv_buffer_max;
};

static int tss_fail(struct sp_err *e, const char *what, TSS2_RC rc)
{
  return sp_err_set(e, SP_EXIT_FAILED, "%s: %s", what, Tss2_RC_Decode(rc));
}

/* Connects libtss2 to the private swtpm: the TCTI's init connects (and
 * sends a control command), so it is retried until swtpm listens. */
static int connect_esys(struct query *q, struct sp_err *e)
{
  char conf[128];
  snprintf(conf, sizeof conf, "path=%s", q->swtpm.sock);
  size_t size = 0;
  TSS2_RC rc = Tss2_Tcti_Swtpm_Init(NULL, &size, conf);
  if (rc != TSS2_RC_SUCCESS)
    return tss_fail(e, "libtss2 swtpm TCTI", rc);
  q->tcti = sp_xcalloc(1, size);
  for (int waited = 0;; waited += 20) {
    rc = Tss2_Tcti_Swtpm_Init(q->tcti, &size, conf);
    if (rc == TSS2_RC_SUCCESS)
      break;
    if (waited >= CONNECT_MS || !swtpm_copy_alive(&q->swtpm)) {
      free(q->tcti);
      q->tcti = NULL;
      sp_err_set(e, SP_EXIT_FAILED, "swtpm did not start on this TPM state");
      swtpm_copy_explain(&q->swtpm, e);
      return -1;
    }
    nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000 * 1000 }, NULL);
  }
  rc = Esys_Initialize(&q->esys, q->tcti, NULL);
  if (rc != TSS2_RC_SUCCESS) {
    tss_fail(e, "libtss2 Esys_Initialize", rc);
    swtpm_copy_explain(&q->swtpm, e);
    return -1;
  }
  return 0;
}

static int properties(struct query *q, TPM2_PT first, struct tpm_info *ti, struct sp_err *e)
{
  TPMI_YES_NO more = TPM2_YES;
  TPM2_PT next = first;
  while (more) {
    TPMS_CAPABILITY_DATA *cap = NULL;
    TSS2_RC rc = Esys_GetCapability(q->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                    TPM2_CAP_TPM_PROPERTIES, next, TPM2_MAX_TPM_PROPERTIES,
                                    &more, &cap);
    if (rc != TSS2_RC_SUCCESS)
      return tss_fail(e, "TPM2_GetCapability(properties)", rc);
    const TPML_TAGGED_TPM_PROPERTY *p = &cap->data.tpmProperties;
    for (UINT32 i = 0; i < p->count; i++) {
      uint32_t v = p->tpmProperty[i].value;
      char four[5] = { (char)(v >> 24), (char)(v >> 16), (char)(v >> 8), (char)v, 0 };
      for (int k = 0; k < 4; k++)
        if (four[k] && (four[k] < 0x20 || four[k] > 0x7e))
          four[k] = '?';
      switch (p->tpmProperty[i].property) {
      case TPM2_PT_LEVEL: ti->spec_level = v; break;
      case TPM2_PT_REVISION: ti->spec_revision = v; break;
      case TPM2_PT_DAY_OF_YEAR: ti->spec_day = v; break;
      case TPM2_PT_YEAR: ti->spec_year = v; break;
      case TPM2_PT_MANUFACTURER: memcpy(ti->manufacturer, four, 5); break;
      case TPM2_PT_VENDOR_STRING_1: memcpy(ti->vendor, four, 4); break;
      case TPM2_PT_VENDOR_STRING_2: memcpy(ti->vendor + 4, four, 4); break;
      case TPM2_PT_VENDOR_STRING_3: memcpy(ti->vendor + 8, four, 4); break;
      case TPM2_PT_VENDOR_STRING_4: memcpy(ti->vendor + 12, four, 4); break;
      case TPM2_PT_FIRMWARE_VERSION_1: ti->firmware1 = v; break;
      case TPM2_PT_FIRMWARE_VERSION_2: ti->firmware2 = v; break;
      case TPM2_PT_NV_BUFFER_MAX: q->nv_buffer_max = v; break;
      case TPM2_PT_PERMANENT: ti->permanent = v; break;
      case TPM2_PT_LOCKOUT_COUNTER: ti->lockout_counter = v; break;
      case TPM2_PT_MAX_AUTH_FAIL: ti->max_auth_fail = v; break;
      default: break;
      }
      next = p->tpmProperty[i].property + 1;
    }
    if (!p->count)
      more = TPM2_NO;
    Esys_Free(cap);
    /* Only the fixed and the variable groups are asked for. */
    if ((next & 0xFFFFFF00) != (first & 0xFFFFFF00))
      more = TPM2_NO;
  }
  /* The vendor string is space padded. */
  for (size_t n = strlen(ti->vendor); n && ti->vendor[n - 1] == ' ';)
    ti->vendor[--n] = '\0';
  for (size_t n = strlen(ti->manufacturer); n && ti->manufacturer[n - 1] == ' ';)
    ti->manufacturer[--n] = '\0';
  return 0;
}

static int banks(struct query *q, struct tpm_info *ti, struct sp_err *e)
{
  TPMI_YES_NO more;
  TPMS_CAPABILITY_DATA *cap = NULL;
  TSS2_RC rc = Esys_GetCapability(q->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                  TPM2_CAP_PCRS, 0, TPM2_NUM_PCR_BANKS, &more, &cap);
  if (rc != TSS2_RC_SUCCESS)
    return tss_fail(e, "TPM2_GetCapability(PCRs)", rc);
  const TPML_PCR_SELECTION *s = &cap->data.assignedPCR;
  ti->banks = sp_xcalloc(s->count ? s->count : 1, sizeof *ti->banks);
  for (UINT32 i = 0; i < s->count; i++) {
    unsigned n = 0;
    for (UINT8 b = 0; b < s->pcrSelections[i].sizeofSelect && b < TPM2_PCR_SELECT_MAX; b++)
      n += (unsigned)__builtin_popcount(s->pcrSelections[i].pcrSelect[b]);
    ti->banks[ti->nbanks++] = (struct tpm_bank){ .alg = s->pcrSelections[i].hash, .pcrs = n };
  }
  Esys_Free(cap);
  return 0;
}

/* Every handle of one range (HR_NV_INDEX, HR_PERSISTENT). */
static int handles(struct query *q, uint32_t first, uint32_t **out, size_t *n, struct sp_err *e)
{
  *out = NULL;
  *n = 0;
  TPMI_YES_NO more = TPM2_YES;
  uint32_t next = first;
  while (more && *n < HANDLES_MAX) {
    TPMS_CAPABILITY_DATA *cap = NULL;
    TSS2_RC rc = Esys_GetCapability(q->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                    TPM2_CAP_HANDLES, next, TPM2_MAX_CAP_HANDLES, &more, &cap);
    if (rc != TSS2_RC_SUCCESS)
      return tss_fail(e, "TPM2_GetCapability(handles)", rc);
    const TPML_HANDLE *h = &cap->data.handles;
    *out = sp_xreallocarray(*out, *n + h->count + 1, sizeof **out);
    for (UINT32 i = 0; i < h->count; i++)
      if ((h->handle[i] & HR_RANGE_MASK) == first)
        (*out)[(*n)++] = h->handle[i];
    if (!h->count || (h->handle[h->count - 1] & HR_RANGE_MASK) != first)
      more = TPM2_NO;
    else
      next = h->handle[h->count - 1] + 1;
    Esys_Free(cap);
  }
  return 0;
}

/* Reads an index's content with an empty authorization: the index's own,
 * the owner's or the platform's, whichever its attributes allow.  On the
 * private copy a refused read costs nothing. */
static void nv_content(struct query *q, ESYS_TR tr, struct tpm_nv *nv)
{
  ESYS_TR auth = ESYS_TR_NONE;
  if (nv->attributes & TPMA_NV_AUTHREAD)
    auth = tr;
  else if (nv->attributes & TPMA_NV_OWNERREAD)
    auth = ESYS_TR_RH_OWNER;
  else if (nv->attributes & TPMA_NV_PPREAD)
    auth = ESYS_TR_RH_PLATFORM;
  if (auth == ESYS_TR_NONE || !(nv->attributes & TPMA_NV_WRITTEN) ||
      nv->size > TPM_INFO_NV_READ_MAX)
    return;
  uint8_t *buf = malloc(nv->size ? nv->size : 1);
  if (!buf)
    return;
  size_t got = 0;
  uint32_t chunk = q->nv_buffer_max ? q->nv_buffer_max : 512;
  TSS2_RC rc = TSS2_RC_SUCCESS;
  while (got < nv->size) {
    UINT16 want = (UINT16)(nv->size - got < chunk ? nv->size - got : chunk);
    TPM2B_MAX_NV_BUFFER *d = NULL;
    rc = Esys_NV_Read(q->esys, auth, tr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, want,
                      (UINT16)got, &d);
    if (rc != TSS2_RC_SUCCESS)
      break;
    size_t n = d->size <= want ? d->size : want;
    memcpy(buf + got, d->buffer, n);
    Esys_Free(d);
    if (!n)
      break;
    got += n;
  }
  if (rc != TSS2_RC_SUCCESS || got != nv->size) {
    nv->read_rc = rc ? rc : 1;
    free(buf);
    return;
  }
  nv->read = true;
  nv->data = buf;
  nv->data_len = got;
  sp_sha256_hex(buf, got, nv->sha256);
}

static int nv_indexes(struct query *q, struct tpm_info *ti, struct sp_err *e)
{
  _cleanup_free_ uint32_t *hs = NULL;
  size_t n;
  if (handles(q, HR_NV_INDEX, &hs, &n, e) < 0)
    return -1;
  ti->nv = sp_xcalloc(n ? n : 1, sizeof *ti->nv);
  for (size_t i = 0; i < n; i++) {
    ESYS_TR tr;
    TSS2_RC rc = Esys_TR_FromTPMPublic(q->esys, hs[i], ESYS_TR_NONE, ESYS_TR_NONE,
                                       ESYS_TR_NONE, &tr);
    if (rc != TSS2_RC_SUCCESS)
      return tss_fail(e, "TPM2_NV_ReadPublic", rc);
    TPM2B_NV_PUBLIC *pub = NULL;
    rc = Esys_NV_ReadPublic(q->esys, tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL);
    if (rc != TSS2_RC_SUCCESS) {
      Esys_TR_Close(q->esys, &tr);
      return tss_fail(e, "TPM2_NV_ReadPublic", rc);
    }
    struct tpm_nv *nv = &ti->nv[ti->nnv++];
    nv->handle = hs[i];
    nv->attributes = pub->nvPublic.attributes;
    nv->size = pub->nvPublic.dataSize;
    nv->name_alg = pub->nvPublic.nameAlg;
    Esys_Free(pub);
    nv_content(q, tr, nv);
    Esys_TR_Close(q->esys, &tr);
  }
  return 0;
}

static char *hex(const uint8_t *p, size_t n)
{
  char *s = sp_xmalloc(2 * n + 1);
  for (size_t i = 0; i < n; i++)
    snprintf(s + 2 * i, 3, "%02x", p[i]);
  s[2 * n] = '\0';
  return s;
}

static int persistent(struct query *q, struct tpm_info *ti, struct sp_err *e)
{
  _cleanup_free_ uint32_t *hs = NULL;
  size_t n;
  if (handles(q, HR_PERSISTENT, &hs, &n, e) < 0)
    return -1;
  ti->objects = sp_xcalloc(n ? n : 1, sizeof *ti->objects);
  for (size_t i = 0; i < n; i++) {
    ESYS_TR tr;
    TSS2_RC rc = Esys_TR_FromTPMPublic(q->esys, hs[i], ESYS_TR_NONE, ESYS_TR_NONE,
                                       ESYS_TR_NONE, &tr);
    if (rc != TSS2_RC_SUCCESS)
      return tss_fail(e, "TPM2_ReadPublic", rc);
    TPM2B_PUBLIC *pub = NULL;
    TPM2B_NAME *name = NULL;
    rc = Esys_ReadPublic(q->esys, tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, &name,
                         NULL);
    Esys_TR_Close(q->esys, &tr);
    if (rc != TSS2_RC_SUCCESS)
      return tss_fail(e, "TPM2_ReadPublic", rc);
    struct tpm_object *o = &ti->objects[ti->nobjects++];
    o->handle = hs[i];
    o->type = pub->publicArea.type;
    o->name_alg = pub->publicArea.nameAlg;
    o->attributes = pub->publicArea.objectAttributes;
    if (o->type == TPM2_ALG_RSA)
      o->bits = pub->publicArea.parameters.rsaDetail.keyBits;
    else if (o->type == TPM2_ALG_ECC)
      o->curve = pub->publicArea.parameters.eccDetail.curveID;
    o->name = hex(name->name, name->size);
    Esys_Free(pub);
    Esys_Free(name);
  }
  return 0;
}

static int clock_info(struct query *q, struct tpm_info *ti, struct sp_err *e)
{
  TPMS_TIME_INFO *t = NULL;
  TSS2_RC rc = Esys_ReadClock(q->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &t);
  if (rc != TSS2_RC_SUCCESS)
    return tss_fail(e, "TPM2_ReadClock", rc);
  ti->clock = t->clockInfo.clock;
  ti->reset_count = t->clockInfo.resetCount;
  ti->restart_count = t->clockInfo.restartCount;
  Esys_Free(t);
  return 0;
}

int tpm_query(const struct sp_tree *tree, const char *version, struct tpm_info *ti,
              struct sp_err *e)
{
  memset(ti, 0, sizeof *ti);
  ti->version = sp_xstrdup(version);
  if (strcmp(version, "2.0") != 0) {
    if (tpm_probe(tree, version, e) < 0)
      return -1;
    ti->note = sp_xstrdup("TPM 1.2: swtpm loads the state; libtss2 speaks TPM 2.0 only, "
                          "so nothing more is read");
    return 0;
  }
  /* libtss2 logs its own errors on stderr unless told otherwise; ours carry
   * them.  TSS2_LOG set by the user still wins. */
  setenv("TSS2_LOG", "all+none", 0);
  struct query q = { .swtpm = SWTPM_COPY_INIT };
  int rc = swtpm_copy_start(&q.swtpm, tree, version, e);
  if (rc == 0)
    rc = connect_esys(&q, e);
  if (rc == 0)
    rc = properties(&q, TPM2_PT_FIXED, ti, e);
  if (rc == 0)
    rc = properties(&q, TPM2_PT_VAR, ti, e);
  if (rc == 0)
    rc = banks(&q, ti, e);
  if (rc == 0)
    rc = nv_indexes(&q, ti, e);
  if (rc == 0)
    rc = persistent(&q, ti, e);
  if (rc == 0)
    rc = clock_info(&q, ti, e);
  ti->queried = rc == 0;
  if (q.esys)
    Esys_Finalize(&q.esys);
  if (q.tcti) {
    Tss2_Tcti_Finalize(q.tcti);
    free(q.tcti);
  }
  swtpm_copy_stop(&q.swtpm);
  return rc;
}
