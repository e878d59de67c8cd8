#include "domain_xml.h"

#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "cleanup_xml.h"
#include "xalloc.h"


/* Returns a malloc'd copy of the string value of an XPath expression
 * relative to node, or NULL when it is empty or absent. */
static char *xstr(xmlXPathContextPtr ctx, xmlNodePtr node, const char *expr)
{
  ctx->node = node;
  _cleanup_xpath_obj_ xmlXPathObjectPtr o =
    xmlXPathEvalExpression((const xmlChar *)expr, ctx);
  if (!o)
    return NULL;
  xmlChar *s = xmlXPathCastToString(o);
  if (!s)
    return NULL;
  char *r = *s ? strdup((const char *)s) : NULL;
  xmlFree(s);
  return r;
}

static bool xbool(xmlXPathContextPtr ctx, xmlNodePtr node, const char *expr)
{
  ctx->node = node;
  _cleanup_xpath_obj_ xmlXPathObjectPtr o =
    xmlXPathEvalExpression((const xmlChar *)expr, ctx);
  return o && xmlXPathCastToBoolean(o);
}

static bool streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

static bool yes(const char *s) { return streq(s, "yes"); }

static int parse_disks(xmlXPathContextPtr ctx, xmlNodePtr root, struct sp_domain *d,
                       struct sp_err *e)
{
  ctx->node = root;
  _cleanup_xpath_obj_ xmlXPathObjectPtr o =
    xmlXPathEvalExpression((const xmlChar *)"/domain/devices/disk", ctx);
  int n = (o && o->nodesetval) ? o->nodesetval->nodeNr : 0;
  if (n == 0)
    return 0;
  d->disks = sp_xcalloc((size_t)n, sizeof *d->disks);
  for (int i = 0; i < n; i++) {
    xmlNodePtr node = o->nodesetval->nodeTab[i];
    struct sp_disk *k = &d->disks[d->ndisks++];
    _cleanup_free_ char *backup = xstr(ctx, node, "string(@backup)");
    k->target = xstr(ctx, node, "string(target/@dev)");
    k->device = xstr(ctx, node, "string(@device)");
    if (!k->device)
      k->device = strdup("disk");
    k->bus = xstr(ctx, node, "string(target/@bus)");
    k->type = xstr(ctx, node, "string(@type)");
    k->source = xstr(ctx, node, "string(source/@file | source/@dev)");
    k->format = xstr(ctx, node, "string(driver/@type)");
    k->backup_no = streq(backup, "no");
    k->readonly = xbool(ctx, node, "boolean(readonly)");
    k->shareable = xbool(ctx, node, "boolean(shareable)");
    k->removable = streq(k->device, "cdrom") || streq(k->device, "floppy");
    if (!k->target)
      return sp_err_set(e, SP_EXIT_FAILED, "domain XML: a <disk> has no <target dev=...>");
  }
  return 0;
}

static int parse_nvram(xmlXPathContextPtr ctx, xmlNodePtr root, struct sp_domain *d,
                       struct sp_err *e)
{
  if (!xbool(ctx, root, "boolean(/domain/os/nvram)"))
    return 0;
  _cleanup_free_ char *type = xstr(ctx, root, "string(/domain/os/nvram/@type)");
  d->nvram.template_path = xstr(ctx, root, "string(/domain/os/nvram/@template)");
  d->nvram.format = xstr(ctx, root, "string(/domain/os/nvram/@format)");
  if (!type || streq(type, "file")) {
    d->nvram.type = SP_NVRAM_FILE;
    /* Classic form holds the path as text; libvirt >= 8.5 may use <source file>. */
    d->nvram.path = xstr(ctx, root, "string(/domain/os/nvram/source/@file)");
    if (!d->nvram.path)
      d->nvram.path = xstr(ctx, root, "normalize-space(/domain/os/nvram/text())");
  } else if (streq(type, "block")) {
    d->nvram.type = SP_NVRAM_BLOCK;
    d->nvram.path = xstr(ctx, root, "string(/domain/os/nvram/source/@dev)");
  } else if (streq(type, "network")) {
    d->nvram.type = SP_NVRAM_NETWORK;
  } else {
    return sp_err_set(e, SP_EXIT_FAILED, "domain XML: unknown <nvram type='%s'>", type);
  }
  return 0;
}

static void parse_loader(xmlXPathContextPtr ctx, xmlNodePtr root, struct sp_domain *d)
{
  struct sp_loader *l = &d->loader;
  l->present = xbool(ctx, root, "boolean(/domain/os/loader)");
  if (!l->present)
    return;
  _cleanup_free_ char *ro = xstr(ctx, root, "string(/domain/os/loader/@readonly)");
  _cleanup_free_ char *sec = xstr(ctx, root, "string(/domain/os/loader/@secure)");
  _cleanup_free_ char *stateless = xstr(ctx, root, "string(/domain/os/loader/@stateless)");
  l->path = xstr(ctx, root, "normalize-space(/domain/os/loader/text())");
  l->type = xstr(ctx, root, "string(/domain/os/loader/@type)");
  l->readonly = yes(ro);
  l->secure = yes(sec);
  l->stateless = yes(stateless);
}

static void parse_tpm(xmlXPathContextPtr ctx, xmlNodePtr root, struct sp_domain *d)
{
  struct sp_tpm *t = &d->tpm;
  _cleanup_free_ char *backend = xstr(ctx, root, "string(/domain/devices/tpm[1]/backend/@type)");
  if (!backend)
    return;
  t->backend = streq(backend, "emulator")      ? SP_TPM_EMULATOR
               : streq(backend, "passthrough") ? SP_TPM_PASSTHROUGH
                                               : SP_TPM_OTHER;
  t->model = xstr(ctx, root, "string(/domain/devices/tpm[1]/@model)");
  t->version = xstr(ctx, root, "string(/domain/devices/tpm[1]/backend/@version)");
  if (t->backend == SP_TPM_EMULATOR && !t->version)
    t->version = strdup("2.0"); /* libvirt's default for a new emulator TPM since 7.x */
  t->secret_uuid = xstr(ctx, root, "string(/domain/devices/tpm[1]/backend/encryption/@secret)");
  t->source_path = xstr(ctx, root, "string(/domain/devices/tpm[1]/backend/source/@path)");
  t->device_path = xstr(ctx, root, "string(/domain/devices/tpm[1]/backend/device/@path)");
  _cleanup_free_ char *ps =
    xstr(ctx, root, "string(/domain/devices/tpm[1]/backend/@persistent_state)");
  t->persistent_state = yes(ps);
}

static int parse(const char *xml, size_t len, struct sp_domain *d, struct sp_err *e);

int sp_domain_parse(const char *xml, size_t len, struct sp_domain *d, struct sp_err *e)
{
  memset(d, 0, sizeof *d);
  /* One failure path: nothing half-filled is left to the caller. */
  if (parse(xml, len, d, e) < 0) {
    sp_domain_free(d);
    return -1;
  }
  return 0;
}

static int parse(const char *xml, size_t len, struct sp_domain *d, struct sp_err *e)
{
  if (len > 16u << 20)
    return sp_err_set(e, SP_EXIT_FAILED, "domain XML larger than 16 MiB");
  /* NONET: never fetch anything; no NOENT: entities are not expanded. */
  _cleanup_xml_doc_ xmlDocPtr doc =
    xmlReadMemory(xml, (int)len, "domain.xml", NULL,
                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  if (!doc)
    return sp_err_set(e, SP_EXIT_FAILED, "domain XML is not well-formed XML");
  xmlNodePtr root = xmlDocGetRootElement(doc);
  if (!root || !xmlStrEqual(root->name, (const xmlChar *)"domain"))
    return sp_err_set(e, SP_EXIT_FAILED, "domain XML: the root element is not <domain>");
  _cleanup_xpath_ctx_ xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
  if (!ctx)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "domain XML");

  d->name = xstr(ctx, root, "normalize-space(/domain/name)");
  d->uuid = xstr(ctx, root, "normalize-space(/domain/uuid)");
  if (!d->name)
    return sp_err_set(e, SP_EXIT_FAILED, "domain XML has no <name>");
  _cleanup_free_ char *id = xstr(ctx, root, "string(/domain/@id)");
  d->running = id && strcmp(id, "-1") != 0;
  _cleanup_free_ char *fw = xstr(ctx, root, "string(/domain/os/@firmware)");
  d->firmware_efi = streq(fw, "efi");

  if (parse_disks(ctx, root, d, e) < 0 || parse_nvram(ctx, root, d, e) < 0)
    return -1;
  parse_loader(ctx, root, d);
  parse_tpm(ctx, root, d);

  static const char agent[] =
    "/domain/devices/channel/target[@type='virtio' and @name='org.qemu.guest_agent.0']";
  d->agent_configured = xbool(ctx, root, agent);
  char connected[sizeof agent + 40];
  snprintf(connected, sizeof connected, "boolean(%s[@state='connected'])", agent);
  d->agent_connected = xbool(ctx, root, connected);
  d->confined_apparmor =
    xbool(ctx, root, "boolean(/domain/seclabel[@model='apparmor' and not(@type='none')])");
  d->confined_selinux =
    xbool(ctx, root, "boolean(/domain/seclabel[@model='selinux' and not(@type='none')])");
  return 0;
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
