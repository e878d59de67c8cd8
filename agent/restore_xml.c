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

static void docp(xmlDocPtr *d) { if (*d) xmlFreeDoc(*d); }
static void xctxp(xmlXPathContextPtr *c) { if (*c) xmlXPathFreeContext(*c); }
static void xobjp(xmlXPathObjectPtr *o) { if (*o) xmlXPathFreeObject(*o); }

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

static xmlNodePtr child(xmlNodePtr n, const char *name)
{
  for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
    if (c->type == XML_ELEMENT_NODE && xmlStrEqual(c->name, (const xmlChar *)name))
      return c;
  return NULL;
}

static void remove_children(xmlNodePtr n, const char *name)
{
  xmlNodePtr c = n->children;
  while (c) {
    xmlNodePtr next = c->next;
    if (c->type == XML_ELEMENT_NODE && xmlStrEqual(c->name, (const xmlChar *)name)) {
      xmlUnlinkNode(c);
      xmlFreeNode(c);
    }
    c = next;
  }
}

/* Sets the text content of the first <name> child of n (created if absent). */
static int set_text(xmlNodePtr n, const char *name, const char *text)
{
  xmlNodePtr c = child(n, name);
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
  _cleanup_(xobjp) xmlXPathObjectPtr o = xmlXPathEvalExpression((const xmlChar *)expr, ctx);
  if (!o || !o->nodesetval || o->nodesetval->nodeNr != 1)
    return sp_err_set(e, SP_EXIT_FAILED, "domain.xml of the point has no disk %s", d->target);
  xmlNodePtr disk = o->nodesetval->nodeTab[0];
  xmlSetProp(disk, (const xmlChar *)"type", (const xmlChar *)"file");
  remove_children(disk, "source");
  remove_children(disk, "backingStore");
  xmlNodePtr src = xmlNewNode(NULL, (const xmlChar *)"source");
  xmlNodePtr driver = child(disk, "driver");
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
  xmlNodePtr os = child(root, "os");
  if (!os)
    return sp_err_set(e, SP_EXIT_FAILED, "domain.xml of the point has no <os>");
  xmlNodePtr nv = child(os, "nvram");
  if (!nv) {
    /* firmware='efi' autoselection: libvirt 9.0 keeps the path only in
     * the live XML; an explicit path makes it use ours. */
    if (!(nv = xmlNewChild(os, NULL, (const xmlChar *)"nvram", NULL)))
      return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "domain XML");
  }
  xmlNodePtr src = child(nv, "source");
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

int restore_xml(const char *xml, size_t len, const struct restore_xml_opts *o, char **out,
                struct sp_err *e)
{
  _cleanup_(docp) xmlDocPtr doc =
    xmlReadMemory(xml, (int)len, "domain.xml", NULL,
                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
  if (!root || !xmlStrEqual(root->name, (const xmlChar *)"domain"))
    return sp_err_set(e, SP_EXIT_FAILED, "domain.xml of the point is not a domain");
  _cleanup_(xctxp) xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
  if (!ctx)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "domain XML");
  if ((o->name && set_text(root, "name", o->name) < 0) ||
      (o->uuid && set_text(root, "uuid", o->uuid) < 0))
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "domain XML");
  if (o->new_macs) {
    _cleanup_(xobjp) xmlXPathObjectPtr macs =
      xmlXPathEvalExpression((const xmlChar *)"/domain/devices/interface", ctx);
    for (int i = 0; macs && macs->nodesetval && i < macs->nodesetval->nodeNr; i++)
      remove_children(macs->nodesetval->nodeTab[i], "mac");
  }
  for (size_t i = 0; i < o->ndisks; i++)
    if (rewrite_disk(ctx, &o->disks[i], e) < 0)
      return -1;
  if (o->nvram_path && rewrite_nvram(root, o->nvram_path, e) < 0)
    return -1;
  xmlChar *buf = NULL;
  int n = 0;
  xmlDocDumpFormatMemory(doc, &buf, &n, 1);
  if (!buf)
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "domain XML");
  *out = strndup((const char *)buf, (size_t)n);
  xmlFree(buf);
  return *out ? 0 : sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "domain XML");
}
