#include "restore_xml.h"

#include <errno.h>
#include <fcntl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "cleanup_xml.h"
#include "domain_filter.h"
#include "strv.h"
#include "xalloc.h"
#include "xml_tree.h"


int restore_new_uuid(char out[37], struct sp_err *e)
{
  unsigned char b[16];
  _cleanup_close_ int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0 || read(fd, b, sizeof b) != (ssize_t)sizeof b)
    return sp_err_sys(e, SP_EXIT_FAILED, errno, "cannot read /dev/urandom");
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  snprintf(out, 37,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
           b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
           b[15]);
  return 0;
}

/* Sets the text content of the first <name> child of n (created if absent). */
static int set_text(xmlNodePtr n, const char *name, const char *text)
{
  xmlNodePtr c = sp_xml_child(n, name);
  if (!c && !(c = xmlNewChild(n, NULL, (const xmlChar *)name, NULL)))
    return -1;
  _cleanup_free_ char *esc = (char *)xmlEncodeSpecialChars(n->doc, (const xmlChar *)text);
  if (!esc)
    return -1;
  xmlNodeSetContent(c, (const xmlChar *)esc);
  return 0;
}

static int rewrite_disk(xmlXPathContextPtr ctx, const struct restored_disk *d, struct sp_err *e)
{
  /* Targets come from our manifest (checked plain names): safe in XPath. */
  char expr[256];
  snprintf(expr, sizeof expr, "/domain/devices/disk[target/@dev='%s']", d->target);
  _cleanup_xpath_obj_ xmlXPathObjectPtr o = xmlXPathEvalExpression((const xmlChar *)expr, ctx);
  if (!o || !o->nodesetval || o->nodesetval->nodeNr != 1)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "domain.xml of the point has no disk %s", d->target);
  xmlNodePtr disk = o->nodesetval->nodeTab[0];
  xmlSetProp(disk, (const xmlChar *)"type", (const xmlChar *)"file");
  sp_xml_remove_children(disk, "source");
  sp_xml_remove_children(disk, "backingStore");
  xmlNodePtr src = xmlNewNode(NULL, (const xmlChar *)"source");
  xmlNodePtr driver = sp_xml_child(disk, "driver");
  if (!src)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "domain XML");
  xmlSetProp(src, (const xmlChar *)"file", (const xmlChar *)d->path);
  if (driver)
    xmlAddNextSibling(driver, src);
  else
    xmlAddChild(disk, src);
  if (!driver && !(driver = xmlNewChild(disk, NULL, (const xmlChar *)"driver", NULL)))
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "domain XML");
  xmlSetProp(driver, (const xmlChar *)"name", (const xmlChar *)"qemu");
  xmlSetProp(driver, (const xmlChar *)"type", (const xmlChar *)d->format);
  return 0;
}

static int rewrite_nvram(xmlNodePtr root, const char *path, struct sp_err *e)
{
  xmlNodePtr os = sp_xml_child(root, "os");
  if (!os)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "domain.xml of the point has no <os>");
  xmlNodePtr nv = sp_xml_child(os, "nvram");
  if (!nv) {
    /* firmware='efi' autoselection: libvirt 9.0 keeps the path only in
     * the live XML; an explicit path makes it use ours. */
    if (!(nv = xmlNewChild(os, NULL, (const xmlChar *)"nvram", NULL)))
      return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "domain XML");
  }
  xmlNodePtr src = sp_xml_child(nv, "source");
  if (src) {
    xmlUnsetProp(src, (const xmlChar *)"dev");
    xmlSetProp(src, (const xmlChar *)"file", (const xmlChar *)path);
    xmlSetProp(nv, (const xmlChar *)"type", (const xmlChar *)"file");
    return 0;
  }
  xmlUnsetProp(nv, (const xmlChar *)"type");
  _cleanup_free_ char *esc = (char *)xmlEncodeSpecialChars(root->doc, (const xmlChar *)path);
  if (!esc)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "domain XML");
  xmlNodeSetContent(nv, (const xmlChar *)esc);
  return 0;
}

/* <tpm><backend type='emulator'>: libvirt's directory for the UUID (no
 * <source>), or the one the replaced definition named. */
static int rewrite_tpm(xmlXPathContextPtr ctx, const struct restore_xml_opts *o,
                       struct sp_err *e)
{
  _cleanup_xpath_obj_ xmlXPathObjectPtr b =
    xmlXPathEvalExpression((const xmlChar *)"/domain/devices/tpm/backend", ctx);
  for (int i = 0; b && b->nodesetval && i < b->nodesetval->nodeNr; i++) {
    xmlNodePtr backend = b->nodesetval->nodeTab[i];
    sp_xml_remove_children(backend, "source");
    if (!o->tpm_source)
      continue;
    xmlNodePtr src = xmlNewChild(backend, NULL, (const xmlChar *)"source", NULL);
    if (!src)
      return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "domain XML");
    xmlSetProp(src, (const xmlChar *)"type", (const xmlChar *)"dir");
    xmlSetProp(src, (const xmlChar *)"path", (const xmlChar *)o->tpm_dir);
  }
  return 0;
}

static bool restored(const struct restore_xml_opts *o, const char *target)
{
  for (size_t i = 0; target && i < o->ndisks; i++)
    if (strcmp(o->disks[i].target, target) == 0)
      return true;
  return false;
}

/* Disks the point does not hold: refused, kept or dropped; kept gets
 * the targets kept (for the filter). */
static int other_disks(xmlXPathContextPtr ctx, const struct restore_xml_opts *o,
                       struct sp_strv *kept, struct sp_err *e)
{
  _cleanup_xpath_obj_ xmlXPathObjectPtr d =
    xmlXPathEvalExpression((const xmlChar *)"/domain/devices/disk", ctx);
  char list[1024] = "";
  size_t off = 0;
  for (int i = 0; d && d->nodesetval && i < d->nodesetval->nodeNr; i++) {
    xmlNodePtr disk = d->nodesetval->nodeTab[i];
    xmlNodePtr target = sp_xml_child(disk, "target");
    xmlChar *dev = target ? xmlGetProp(target, (const xmlChar *)"dev") : NULL;
    xmlChar *device = xmlGetProp(disk, (const xmlChar *)"device");
    xmlChar *type = xmlGetProp(disk, (const xmlChar *)"type");
    bool removable = device && (xmlStrEqual(device, (const xmlChar *)"cdrom") ||
                                xmlStrEqual(device, (const xmlChar *)"floppy"));
    bool has_source = sp_xml_child(disk, "source") != NULL;
    const char *name = dev ? (const char *)dev : "(no target)";
    if (!restored(o, (const char *)dev) && has_source) {
      if (o->other_disks == RESTORE_OTHER_KEEP) {
        sp_strv_push(kept, name);
      } else if (o->other_disks == RESTORE_OTHER_DROP) {
        if (removable) {
          sp_xml_remove_children(disk, "source");
        } else {
          xmlUnlinkNode(disk);
          xmlFreeNode(disk);
        }
      } else if (off < sizeof list) {
        off += (size_t)snprintf(list + off, sizeof list - off, "%s%s (%s%s%s)",
                                off ? ", " : "", name, device ? (const char *)device : "disk",
                                type ? ", " : "", type ? (const char *)type : "");
      }
    }
    xmlFree(dev);
    xmlFree(device);
    xmlFree(type);
  }
  if (off)
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "domain.xml of the point has disks the point does "
                      "not hold: %s; their sources are paths of the host the point was taken "
                      "on: restore with --other-disks keep (use them as the point says) or "
                      "--other-disks drop (leave them out, a CD-ROM empty)", list);
  return 0;
}

static char *dump(xmlDocPtr doc)
{
  xmlChar *buf = NULL;
  int n = 0;
  xmlDocDumpFormatMemory(doc, &buf, &n, 1);
  char *s = buf ? sp_xstrndup((const char *)buf, (size_t)n) : NULL;
  xmlFree(buf);
  return s;
}

int restore_xml(const char *xml, size_t len, const struct restore_xml_opts *o, char **out,
                char **filtered, struct sp_err *e)
{
  *out = NULL;
  if (filtered)
    *filtered = NULL;
  if (len > (16u << 20))
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "domain.xml of the point is larger than 16 MiB");
  /* No network, no entity substitution, no DTD loaded: a point's XML
   * pulls in nothing; what it declares, the filter names. */
  _cleanup_xml_doc_ xmlDocPtr doc =
    xmlReadMemory(xml, (int)len, "domain.xml", NULL,
                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
  if (!root || !xmlStrEqual(root->name, (const xmlChar *)"domain"))
    return sp_err_set(e, SP_EXIT_PREFLIGHT, "domain.xml of the point is not a domain");
  _cleanup_xpath_ctx_ xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
  if (!ctx)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "domain XML");
  if ((o->name && set_text(root, "name", o->name) < 0) ||
      (o->uuid && set_text(root, "uuid", o->uuid) < 0))
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "domain XML");
  if (o->new_macs) {
    _cleanup_xpath_obj_ xmlXPathObjectPtr macs =
      xmlXPathEvalExpression((const xmlChar *)"/domain/devices/interface", ctx);
    for (int i = 0; macs && macs->nodesetval && i < macs->nodesetval->nodeNr; i++)
      sp_xml_remove_children(macs->nodesetval->nodeTab[i], "mac");
  }
  for (size_t i = 0; i < o->ndisks; i++)
    if (rewrite_disk(ctx, &o->disks[i], e) < 0)
      return -1;
  if (o->nvram_path && rewrite_nvram(root, o->nvram_path, e) < 0)
    return -1;
  if (o->tpm_dir && rewrite_tpm(ctx, o, e) < 0)
    return -1;
  _cleanup_(sp_strv_free) struct sp_strv kept = SP_STRV_INIT;
  int rc = other_disks(ctx, o, &kept, e);
  /* What restore itself wrote may stand where it stands. */
  const char *own[SP_RESTORE_XML_MAX_DISKS + 2];
  size_t nown = 0;
  for (size_t i = 0; i < o->ndisks && nown < SP_RESTORE_XML_MAX_DISKS; i++)
    own[nown++] = o->disks[i].path;
  if (o->nvram_path)
    own[nown++] = o->nvram_path;
  if (o->tpm_dir && o->tpm_source)
    own[nown++] = o->tpm_dir;
  struct domain_filter_opts fo = { .own_paths = own, .nown = nown, .emulators = o->emulators,
                                   .nemulators = o->nemulators,
                                   .kept_disks = (const char *const *)kept.v, .nkept = kept.n };
  struct domain_findings f = { 0 };
  if (rc == 0 && o->trust) {
    /* Taken as it is; the filtered copy only shows what it would drop. */
    if (!(*out = dump(doc)))
      rc = sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "domain XML");
    else if (filtered && domain_filter(doc, &fo, true, &f, e) == 0 && !(*filtered = dump(doc)))
      rc = sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "domain XML");
  } else if (rc == 0 && (rc = domain_filter(doc, &fo, false, &f, e)) == 0) {
    if (f.n) {
      _cleanup_free_ char *text = domain_findings_text(&f);
      rc = sp_err_set(e, SP_EXIT_PREFLIGHT, "domain.xml of the point asks for what restore does "
                      "not define from a point (a point is untrusted input):\n%s"
                      "check that XML and restore with --trust-domain-xml to take it as it is",
                      text ? text : "");
    } else if (!(*out = dump(doc))) {
      rc = sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "domain XML");
    }
  }
  domain_findings_free(&f);
  return rc;
}
