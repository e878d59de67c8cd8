#include "domain_xml.h"

#include <expat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

/* Read with expat, in one pass, rather than libxml2 and XPath: the hook
 * reads every domain's XML on libvirt's critical path, and loading libxml2
 * (with the ICU and libstdc++ it pulls in) cost each hook run about 5 ms of
 * its 15 (docs/facts.md, "Timings").
 *
 * Each field takes the first value met in document order, which is what
 * XPath's string() of the same path gave: an empty value counts as met and
 * reads as absent.  Only elements and attributes in no namespace match, as
 * in XPath without a namespace context.  libvirt never writes a DOCTYPE, so
 * one is refused: no entity is declared, so none is expanded or fetched. */

/* Where an element is, as far as stillpoint cares. */
enum where {
  W_OTHER, W_DOMAIN, W_NAME, W_UUID, W_OS, W_NVRAM, W_LOADER, W_DEVICES, W_DISK, W_TPM,
  W_TPM_BACKEND, W_CHANNEL,
};

enum { MAX_DEPTH = 16 };

/* Text of an element's own character data (libvirt writes these as text
 * only), kept for the first such element. */
struct text {
  char *s;
  size_t len;
  bool met;
};

struct reader {
  XML_Parser parser;
  struct sp_domain *d;
  struct sp_err *e;
  unsigned depth;          /* of the element being read; 0 before the root */
  enum where at[MAX_DEPTH];
  struct text *text;       /* the element whose text is being read, or NULL */
  unsigned text_depth;      /* depth while inside it */
  struct text name, uuid, nvram_text, loader_text;
  char *id, *firmware, *nvram_type, *nvram_source;
  size_t disks_cap;
  char **disk_backup;      /* per disk: its @backup, freed after the parse */
  bool tpm_met;            /* only the first <tpm> counts (tpm[1]) */
  char *tpm_backend;
  char *tpm_persistent;
  char *ro, *secure, *stateless;
  int failed;              /* set by a handler: the error is in e */
};

static bool streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

static bool yes(const char *s) { return streq(s, "yes"); }

/* An attribute's value, or NULL.  Attribute names in a namespace carry it
 * ("uri name") and so never match a bare name. */
static const char *attr(const char **atts, const char *name)
{
  for (size_t i = 0; atts[i]; i += 2)
    if (strcmp(atts[i], name) == 0)
      return atts[i + 1];
  return NULL;
}

/* First value wins; an empty one is kept (and read as absent at the end). */
static void take(char **field, const char **atts, const char *name)
{
  const char *v = attr(atts, name);
  if (!*field && v)
    *field = sp_xstrdup(v);
}

static void start_text(struct reader *r, struct text *t)
{
  if (t->met)
    return;
  t->met = true;
  r->text = t;
  r->text_depth = r->depth;
}

static void on_disk(struct reader *r, const char **atts)
{
  struct sp_domain *d = r->d;
  if (d->ndisks == r->disks_cap) {
    r->disks_cap = r->disks_cap ? 2 * r->disks_cap : 4;
    d->disks = sp_xreallocarray(d->disks, r->disks_cap, sizeof *d->disks);
    r->disk_backup = sp_xreallocarray(r->disk_backup, r->disks_cap, sizeof *r->disk_backup);
  }
  struct sp_disk *k = &d->disks[d->ndisks];
  memset(k, 0, sizeof *k);
  r->disk_backup[d->ndisks] = NULL;
  d->ndisks++;
  take(&k->device, atts, "device");
  take(&k->type, atts, "type");
  take(&r->disk_backup[d->ndisks - 1], atts, "backup");
}

static void in_disk(struct reader *r, const char *name, const char **atts)
{
  struct sp_disk *k = &r->d->disks[r->d->ndisks - 1];
  if (strcmp(name, "target") == 0) {
    take(&k->target, atts, "dev");
    take(&k->bus, atts, "bus");
  } else if (strcmp(name, "source") == 0) {
    take(&k->source, atts, "file");
    take(&k->source, atts, "dev");
  } else if (strcmp(name, "driver") == 0) {
    take(&k->format, atts, "type");
  } else if (strcmp(name, "readonly") == 0) {
    k->readonly = true;
  } else if (strcmp(name, "shareable") == 0) {
    k->shareable = true;
  }
}

static void in_backend(struct reader *r, const char *name, const char **atts)
{
  struct sp_tpm *t = &r->d->tpm;
  if (strcmp(name, "encryption") == 0)
    take(&t->secret_uuid, atts, "secret");
  else if (strcmp(name, "source") == 0)
    take(&t->source_path, atts, "path");
  else if (strcmp(name, "device") == 0)
    take(&t->device_path, atts, "path");
}

static void on_channel_target(struct reader *r, const char **atts)
{
  if (!streq(attr(atts, "type"), "virtio") ||
      !streq(attr(atts, "name"), "org.qemu.guest_agent.0"))
    return;
  r->d->agent_configured = true;
  if (streq(attr(atts, "state"), "connected"))
    r->d->agent_connected = true;
}

static void on_seclabel(struct reader *r, const char **atts)
{
  if (streq(attr(atts, "type"), "none"))
    return;
  const char *model = attr(atts, "model");
  r->d->confined_apparmor |= streq(model, "apparmor");
  r->d->confined_selinux |= streq(model, "selinux");
}

/* What a child element named `name` of an element at `parent` is, having
 * read what it says. */
static enum where child(struct reader *r, enum where parent, const char *name, const char **atts)
{
  struct sp_domain *d = r->d;
  switch (parent) {
  case W_DOMAIN:
    if (strcmp(name, "name") == 0) {
      start_text(r, &r->name);
      return W_NAME;
    }
    if (strcmp(name, "uuid") == 0) {
      start_text(r, &r->uuid);
      return W_UUID;
    }
    if (strcmp(name, "os") == 0) {
      take(&r->firmware, atts, "firmware");
      return W_OS;
    }
    if (strcmp(name, "devices") == 0)
      return W_DEVICES;
    if (strcmp(name, "seclabel") == 0)
      on_seclabel(r, atts);
    return W_OTHER;
  case W_OS:
    if (strcmp(name, "nvram") == 0) {
      take(&r->nvram_type, atts, "type");
      take(&d->nvram.template_path, atts, "template");
      take(&d->nvram.format, atts, "format");
      start_text(r, &r->nvram_text);
      return W_NVRAM;
    }
    if (strcmp(name, "loader") == 0) {
      d->loader.present = true;
      take(&r->ro, atts, "readonly");
      take(&r->secure, atts, "secure");
      take(&r->stateless, atts, "stateless");
      take(&d->loader.type, atts, "type");
      start_text(r, &r->loader_text);
      return W_LOADER;
    }
    return W_OTHER;
  case W_NVRAM:
    /* file or dev, whichever the type names, from the first <source>. */
    if (strcmp(name, "source") == 0)
      take(&r->nvram_source, atts, streq(r->nvram_type, "block") ? "dev" : "file");
    return W_OTHER;
  case W_DEVICES:
    if (strcmp(name, "disk") == 0) {
      on_disk(r, atts);
      return W_DISK;
    }
    if (strcmp(name, "tpm") == 0 && !r->tpm_met) {
      r->tpm_met = true;
      take(&d->tpm.model, atts, "model");
      return W_TPM;
    }
    if (strcmp(name, "channel") == 0)
      return W_CHANNEL;
    return W_OTHER;
  case W_DISK:
    in_disk(r, name, atts);
    return W_OTHER;
  case W_TPM:
    if (strcmp(name, "backend") == 0) {
      take(&r->tpm_backend, atts, "type");
      take(&d->tpm.version, atts, "version");
      take(&r->tpm_persistent, atts, "persistent_state");
      return W_TPM_BACKEND;
    }
    return W_OTHER;
  case W_TPM_BACKEND:
    in_backend(r, name, atts);
    return W_OTHER;
  case W_CHANNEL:
    if (strcmp(name, "target") == 0)
      on_channel_target(r, atts);
    return W_OTHER;
  default:
    return W_OTHER;
  }
}

static void fail(struct reader *r)
{
  r->failed = -1;
  XML_StopParser(r->parser, XML_FALSE);
}

static void XMLCALL on_start(void *data, const char *name, const char **atts)
{
  struct reader *r = data;
  unsigned depth = r->depth++;
  enum where w = W_OTHER;
  if (depth == 0) {
    if (strcmp(name, "domain") != 0) {
      sp_err_set(r->e, SP_EXIT_FAILED, "domain XML: the root element is not <domain>");
      fail(r);
      return;
    }
    take(&r->id, atts, "id");
    w = W_DOMAIN;
  } else if (depth < MAX_DEPTH) {
    w = child(r, r->at[depth - 1], name, atts);
  }
  if (depth < MAX_DEPTH)
    r->at[depth] = w;
}

static void XMLCALL on_end(void *data, const char *name)
{
  (void)name;
  struct reader *r = data;
  if (r->text && r->depth == r->text_depth)
    r->text = NULL;
  r->depth--;
}

static void XMLCALL on_text(void *data, const char *s, int len)
{
  struct reader *r = data;
  /* Only the element's own text, not its children's. */
  if (!r->text || r->depth != r->text_depth || len <= 0)
    return;
  struct text *t = r->text;
  t->s = sp_xrealloc(t->s, t->len + (size_t)len + 1);
  memcpy(t->s + t->len, s, (size_t)len);
  t->len += (size_t)len;
  t->s[t->len] = '\0';
}

static void XMLCALL on_doctype(void *data, const char *name, const char *sysid,
                               const char *pubid, int has_internal_subset)
{
  (void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
  struct reader *r = data;
  sp_err_set(r->e, SP_EXIT_FAILED, "domain XML has a DOCTYPE, which libvirt never writes");
  fail(r);
}

/* XPath's normalize-space(): NULL when nothing but white space is left. */
static char *normalized(const struct text *t)
{
  if (!t->s)
    return NULL;
  char *out = sp_xmalloc(t->len + 1);
  size_t n = 0;
  for (const char *p = t->s; *p; p++) {
    bool space = *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r';
    if (!space)
      out[n++] = *p;
    else if (n > 0 && out[n - 1] != ' ')
      out[n++] = ' ';
  }
  if (n > 0 && out[n - 1] == ' ')
    n--;
  out[n] = '\0';
  if (n == 0) {
    free(out);
    return NULL;
  }
  return out;
}

/* An attribute met but empty reads as absent, as XPath's string() gave. */
static void empty_is_absent(char **s)
{
  if (*s && !**s) {
    free(*s);
    *s = NULL;
  }
}

static void reader_free(struct reader *r)
{
  if (r->parser)
    XML_ParserFree(r->parser);
  for (size_t i = 0; i < r->d->ndisks; i++)
    free(r->disk_backup[i]);
  free(r->disk_backup);
  free(r->name.s);
  free(r->uuid.s);
  free(r->nvram_text.s);
  free(r->loader_text.s);
  free(r->id);
  free(r->firmware);
  free(r->nvram_type);
  free(r->nvram_source);
  free(r->tpm_backend);
  free(r->tpm_persistent);
  free(r->ro);
  free(r->secure);
  free(r->stateless);
}

/* What the first pass read, turned into the model, checked. */
static int finish(struct reader *r)
{
  struct sp_domain *d = r->d;
  d->name = normalized(&r->name);
  d->uuid = normalized(&r->uuid);
  if (!d->name)
    return sp_err_set(r->e, SP_EXIT_FAILED, "domain XML has no <name>");
  empty_is_absent(&r->id);
  d->running = r->id && strcmp(r->id, "-1") != 0;
  d->firmware_efi = streq(r->firmware, "efi");

  for (size_t i = 0; i < d->ndisks; i++) {
    struct sp_disk *k = &d->disks[i];
    char **fields[] = { &k->target, &k->device, &k->bus, &k->type, &k->source, &k->format };
    for (size_t f = 0; f < sizeof fields / sizeof *fields; f++)
      empty_is_absent(fields[f]);
    if (!k->device)
      k->device = sp_xstrdup("disk");
    k->backup_no = streq(r->disk_backup[i], "no");
    k->removable = streq(k->device, "cdrom") || streq(k->device, "floppy");
    if (!k->target)
      return sp_err_set(r->e, SP_EXIT_FAILED, "domain XML: a <disk> has no <target dev=...>");
  }

  empty_is_absent(&d->nvram.template_path);
  empty_is_absent(&d->nvram.format);
  empty_is_absent(&r->nvram_type);
  empty_is_absent(&r->nvram_source);
  if (r->nvram_text.met) {
    if (!r->nvram_type || streq(r->nvram_type, "file")) {
      d->nvram.type = SP_NVRAM_FILE;
      /* Classic form holds the path as text; libvirt >= 8.5 may use <source file>. */
      d->nvram.path = r->nvram_source ? sp_xstrdup(r->nvram_source) : normalized(&r->nvram_text);
    } else if (streq(r->nvram_type, "block")) {
      d->nvram.type = SP_NVRAM_BLOCK;
      d->nvram.path = r->nvram_source ? sp_xstrdup(r->nvram_source) : NULL;
    } else if (streq(r->nvram_type, "network")) {
      d->nvram.type = SP_NVRAM_NETWORK;
    } else {
      return sp_err_set(r->e, SP_EXIT_FAILED, "domain XML: unknown <nvram type='%s'>",
                        r->nvram_type);
    }
  }

  struct sp_loader *l = &d->loader;
  l->path = normalized(&r->loader_text);
  empty_is_absent(&l->type);
  l->readonly = yes(r->ro);
  l->secure = yes(r->secure);
  l->stateless = yes(r->stateless);

  struct sp_tpm *t = &d->tpm;
  empty_is_absent(&r->tpm_backend);
  char **tfields[] = { &t->model, &t->version, &t->secret_uuid, &t->source_path,
                       &t->device_path };
  for (size_t f = 0; f < sizeof tfields / sizeof *tfields; f++)
    empty_is_absent(tfields[f]);
  if (r->tpm_backend) {
    t->backend = streq(r->tpm_backend, "emulator")      ? SP_TPM_EMULATOR
                 : streq(r->tpm_backend, "passthrough") ? SP_TPM_PASSTHROUGH
                                                        : SP_TPM_OTHER;
    if (t->backend == SP_TPM_EMULATOR && !t->version)
      t->version = sp_xstrdup("2.0"); /* libvirt's default for a new emulator TPM since 7.x */
    t->persistent_state = yes(r->tpm_persistent);
  } else {
    /* No backend type: no TPM, as before; nothing of it is kept. */
    for (size_t f = 0; f < sizeof tfields / sizeof *tfields; f++) {
      free(*tfields[f]);
      *tfields[f] = NULL;
    }
  }
  return 0;
}

static int parse(struct reader *r, const char *xml, size_t len)
{
  if (len > 16u << 20)
    return sp_err_set(r->e, SP_EXIT_FAILED, "domain XML larger than 16 MiB");
  /* A separator makes names in a namespace "uri name": never a bare match. */
  r->parser = XML_ParserCreateNS(NULL, ' ');
  if (!r->parser)
    return sp_err_set(r->e, SP_EXIT_FAILED, "domain XML: out of memory");
  XML_SetUserData(r->parser, r);
  XML_SetElementHandler(r->parser, on_start, on_end);
  XML_SetCharacterDataHandler(r->parser, on_text);
  XML_SetStartDoctypeDeclHandler(r->parser, on_doctype);
  if (XML_Parse(r->parser, xml, (int)len, XML_TRUE) != XML_STATUS_OK) {
    if (r->failed)
      return -1;
    return sp_err_set(r->e, SP_EXIT_FAILED, "domain XML is not well-formed XML (line %lu: %s)",
                      (unsigned long)XML_GetCurrentLineNumber(r->parser),
                      XML_ErrorString(XML_GetErrorCode(r->parser)));
  }
  return finish(r);
}

int sp_domain_parse(const char *xml, size_t len, struct sp_domain *d, struct sp_err *e)
{
  memset(d, 0, sizeof *d);
  struct reader r = { .d = d, .e = e };
  int rc = parse(&r, xml, len);
  reader_free(&r);
  /* One failure path: nothing half-filled is left to the caller. */
  if (rc < 0)
    sp_domain_free(d);
  return rc;
}

void sp_domain_free(struct sp_domain *d)
{
  for (size_t i = 0; i < d->ndisks; i++) {
    struct sp_disk *k = &d->disks[i];
    free(k->target);
    free(k->device);
    free(k->bus);
    free(k->type);
    free(k->source);
    free(k->format);
  }
  free(d->disks);
  free(d->name);
  free(d->uuid);
  free(d->nvram.path);
  free(d->nvram.format);
  free(d->nvram.template_path);
  free(d->loader.path);
  free(d->loader.type);
  free(d->tpm.model);
  free(d->tpm.version);
  free(d->tpm.secret_uuid);
  free(d->tpm.source_path);
  free(d->tpm.device_path);
  memset(d, 0, sizeof *d);
}

const struct sp_disk *sp_domain_disk(const struct sp_domain *d, const char *target)
{
  for (size_t i = 0; i < d->ndisks; i++)
    if (strcmp(d->disks[i].target, target) == 0)
      return &d->disks[i];
  return NULL;
}

const char *sp_disk_skip_reason(const struct sp_disk *k)
{
  if (k->removable)
    return streq(k->device, "cdrom") ? "cdrom" : "floppy";
  if (k->backup_no)
    return "backup='no'";
  if (k->shareable)
    return "shareable (another VM may write it)";
  if (k->readonly)
    return "readonly";
  /* A network disk has no path but is exported like any other. */
  if (!k->source && !streq(k->type, "network"))
    return "no source (empty drive)";
  return NULL;
}

bool sp_disk_can_bitmap(const struct sp_disk *k)
{
  return streq(k->format, "qcow2");
}
