#include "domain_filter.h"

#include <errno.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "fsutil.h"
#include "strv.h"
#include "xalloc.h"

/* ---- the lists ----------------------------------------------------------- */

/* Children of <domain> that configure the guest, not the host. */
static const char *const top_allowed[] = {
  "name", "uuid", "genid", "title", "description", "metadata", "maxMemory", "memory",
  "currentMemory", "blkiotune", "memtune", "memoryBacking", "vcpu", "vcpus", "iothreads",
  "iothreadids", "cputune", "numatune", "resource", "sysinfo", "os", "features", "cpu", "clock",
  "on_poweroff", "on_reboot", "on_crash", "on_lockfailure", "pm", "perf", "devices",
  "seclabel", "keywrap", "launchSecurity", NULL,
};

/* Devices that stay inside the guest (their paths are checked below). */
static const char *const devices_allowed[] = {
  "emulator", "disk", "controller", "interface", "input", "graphics", "video", "audio",
  "sound", "console", "serial", "parallel", "channel", "tpm", "rng", "memballoon", "watchdog",
  "panic", "hub", "redirdev", "redirfilter", "smartcard", "iommu", "vsock", "crypto", "memory",
  NULL,
};

/* Known elements that reach into the host: refused with the reason. */
static const struct { const char *parent, *name, *why; } refused[] = {
  { "domain", "bootloader", "a host program libvirt runs to boot the guest" },
  { "domain", "bootloader_args", "arguments of a host bootloader program" },
  { "domain", "idmap", "user namespace mapping of host ids" },
  { "devices", "hostdev", "a host device handed to the guest" },
  { "devices", "filesystem", "a host directory shared with the guest" },
  { "devices", "shmem", "memory shared with host processes" },
  { "devices", "lease", "a lock file on the host" },
  { "interface", "script", "a host script libvirt runs as root" },
  { "interface", "downscript", "a host script libvirt runs as root" },
};

/* Elements whose text and attributes are the guest's business only. */
static const char *const exempt[] = { "title", "description", "metadata", "sysinfo", "cmdline",
                                      NULL };

/* libvirt's own per-domain directories: chardev files and sockets. */
static const char *const libvirt_dirs[] = { "/var/lib/libvirt/qemu/", "/var/log/libvirt/qemu/",
                                            "/run/libvirt/qemu/", NULL };

static const char *const chardevs[] = { "serial", "console", "parallel", "channel", "redirdev",
                                        "smartcard", "rng", NULL };

static bool in_list(const char *s, const char *const *list)
{
  for (; *list; list++)
    if (strcmp(s, *list) == 0)
      return true;
  return false;
}

static bool under(const char *path, const char *const *prefixes)
{
  for (; *prefixes; prefixes++)
    if (strncmp(path, *prefixes, strlen(*prefixes)) == 0)
      return true;
  return false;
}

static bool named(xmlNodePtr n, const char *name)
{
  return n && n->type == XML_ELEMENT_NODE && xmlStrEqual(n->name, (const xmlChar *)name);
}

/* The nearest ancestor (or n itself) named one of list. */
static xmlNodePtr ancestor(xmlNodePtr n, const char *const *list)
{
  for (; n && n->type == XML_ELEMENT_NODE; n = n->parent)
    if (in_list((const char *)n->name, list))
      return n;
  return NULL;
}

/* ---- findings ------------------------------------------------------------ */

struct walk {
  const struct domain_filter_opts *o;
  struct domain_findings *f;
  xmlNodePtr *strip;
  size_t nstrip;
  bool oom;
};

static void find(struct walk *w, xmlNodePtr n, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

static void find(struct walk *w, xmlNodePtr n, const char *fmt, ...)
{
  /* libxml2's own allocation can still fail: then the filter refuses. */
  xmlChar *where = xmlGetNodePath(n);
  if (!where) {
    w->oom = true;
    return;
  }
  w->f->v = sp_xreallocarray(w->f->v, w->f->n + 1, sizeof *w->f->v);
  w->strip = sp_xreallocarray(w->strip, w->nstrip + 1, sizeof *w->strip);
  va_list ap;
  va_start(ap, fmt);
  w->f->v[w->f->n].what = sp_xvasprintf(fmt, ap);
  va_end(ap);
  w->f->v[w->f->n++].where = sp_xstrdup((const char *)where);
  xmlFree(where);
  w->strip[w->nstrip++] = n;
}

/* Whether an absolute path may stand where it stands (n holds it, attr
 * names the attribute or NULL for the text). */
static bool path_allowed(const struct walk *w, xmlNodePtr n, const char *attr, const char *v)
{
  const struct domain_filter_opts *o = w->o;
  if (!v[0] || !sp_abspath_ok(v))
    return false;
  for (size_t i = 0; i < o->nown; i++)
    if (strcmp(v, o->own_paths[i]) == 0)
      return true;
  const char *name = (const char *)n->name;
  xmlNodePtr parent = n->parent;
  if (strcmp(name, "emulator") == 0 && !attr) {
    for (size_t i = 0; i < o->nemulators; i++)
      if (strcmp(v, o->emulators[i]) == 0)
        return true;
    return false;
  }
  if (named(parent, "os")) {
    static const char *const firmware[] = { "/usr/share/", NULL };
    static const char *const kernels[] = { "/boot/", "/var/lib/libvirt/boot/", NULL };
    if (strcmp(name, "loader") == 0 && !attr)
      return under(v, firmware);
    if (strcmp(name, "nvram") == 0 && attr && strcmp(attr, "template") == 0)
      return under(v, firmware);
    if ((strcmp(name, "kernel") == 0 || strcmp(name, "initrd") == 0 ||
         strcmp(name, "dtb") == 0) && !attr)
      return under(v, kernels);
    return false;
  }
  if (strcmp(name, "backend") == 0 && named(parent, "rng") && !attr)
    return strcmp(v, "/dev/urandom") == 0 || strcmp(v, "/dev/random") == 0 ||
           strcmp(v, "/dev/hwrng") == 0;
  if (strcmp(name, "backend") == 0 && named(parent, "interface") && attr)
    return (strcmp(attr, "tap") == 0 && strcmp(v, "/dev/net/tun") == 0) ||
           (strcmp(attr, "vhost") == 0 && strcmp(v, "/dev/vhost-net") == 0);
  if (strcmp(name, "partition") == 0 && named(parent, "resource") && !attr)
    return strcmp(v, "/machine") == 0 || strncmp(v, "/machine/", 9) == 0;
  /* Chardev files and sockets, graphics and vhost-user sockets: in
   * libvirt's own directories only (virtlogd writes chardev files as
   * root). */
  if (ancestor(n, chardevs) || ancestor(n, (const char *const[]){ "graphics", NULL }) ||
      (named(parent, "interface") && strcmp(name, "source") == 0))
    return under(v, libvirt_dirs);
  return false;
}

static void check_values(struct walk *w, xmlNodePtr n)
{
  for (xmlAttrPtr a = n->properties; a; a = a->next) {
    xmlChar *v = xmlNodeListGetString(n->doc, a->children, 1);
    if (v && v[0] == '/' && !path_allowed(w, n, (const char *)a->name, (const char *)v))
      find(w, n, "host path %s in attribute %s: not one restore made, nor in libvirt's or the "
           "firmware's directories", (const char *)v, (const char *)a->name);
    xmlFree(v);
    if (w->nstrip && w->strip[w->nstrip - 1] == n)
      return;
  }
  for (xmlNodePtr c = n->children; c; c = c->next) {
    if (c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE)
      continue;
    const char *t = (const char *)c->content;
    while (t && (*t == ' ' || *t == '\n' || *t == '\t' || *t == '\r'))
      t++;
    if (!t || *t != '/')
      continue;
    _cleanup_free_ char *v = sp_xstrdup(t);
    v[strcspn(v, " \n\t\r")] = '\0';
    if (!path_allowed(w, n, NULL, v)) {
      find(w, n, "host path %s: not one restore made, nor in libvirt's or the firmware's "
           "directories", v);
      return;
    }
  }
}

static bool kept(const struct walk *w, xmlNodePtr disk)
{
  for (xmlNodePtr c = disk->children; c; c = c->next)
    if (named(c, "target")) {
      xmlChar *dev = xmlGetProp(c, (const xmlChar *)"dev");
      bool k = false;
      for (size_t i = 0; dev && i < w->o->nkept; i++)
        k |= strcmp((const char *)dev, w->o->kept_disks[i]) == 0;
      xmlFree(dev);
      return k;
    }
  return false;
}

/* <seclabel>: only libvirt's dynamic labelling, which confines QEMU. */
static void check_seclabel(struct walk *w, xmlNodePtr n)
{
  xmlChar *type = xmlGetProp(n, (const xmlChar *)"type");
  xmlChar *relabel = xmlGetProp(n, (const xmlChar *)"relabel");
  bool label = false;
  for (xmlNodePtr c = n->children; c; c = c->next)
    label |= named(c, "label") || named(c, "imagelabel") || named(c, "baselabel");
  bool ok = (!type || xmlStrEqual(type, (const xmlChar *)"dynamic")) && !label &&
            !(relabel && xmlStrEqual(relabel, (const xmlChar *)"no"));
  if (!ok)
    find(w, n, "a security label other than libvirt's dynamic one (type %s%s%s): it can lift "
         "QEMU's confinement or run it as another user", type ? (const char *)type : "unset",
         label ? ", an explicit label" : "", relabel ? ", relabel set" : "");
  xmlFree(type);
  xmlFree(relabel);
}

static void walk_node(struct walk *w, xmlNodePtr n, int depth);

static void walk_children(struct walk *w, xmlNodePtr n, int depth)
{
  for (xmlNodePtr c = n->children; c && !w->oom; c = c->next) {
    if (c->type == XML_ENTITY_REF_NODE)
      find(w, n, "an entity reference (&%s;): entities can pull in host files",
           (const char *)c->name);
    else if (c->type == XML_PI_NODE)
      find(w, n, "a processing instruction");
    else if (c->type == XML_ELEMENT_NODE)
      walk_node(w, c, depth + 1);
  }
}

static void walk_node(struct walk *w, xmlNodePtr n, int depth)
{
  const char *name = (const char *)n->name;
  const char *parent = n->parent && n->parent->type == XML_ELEMENT_NODE
                         ? (const char *)n->parent->name : "";
  if (depth > 64) {
    find(w, n, "nested deeper than any domain XML");
    return;
  }
  if (n->ns && n->ns->href) {
    find(w, n, "an element of namespace %s%s", (const char *)n->ns->href,
         xmlStrEqual(n->ns->href, (const xmlChar *)"http://libvirt.org/schemas/domain/qemu/1.0")
           ? " (the QEMU command-line namespace: arguments, environment and properties passed "
             "to QEMU as they are)" : "");
    return;
  }
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
    if (strcmp(parent, refused[i].parent) == 0 && strcmp(name, refused[i].name) == 0) {
      find(w, n, "%s", refused[i].why);
      return;
    }
  if (depth == 1 && !in_list(name, top_allowed)) {
    find(w, n, "<%s> is not on stillpoint's list of domain elements", name);
    return;
  }
  if (strcmp(parent, "devices") == 0 && depth == 2 && !in_list(name, devices_allowed)) {
    find(w, n, "<%s> is not on stillpoint's list of devices", name);
    return;
  }
  if (in_list(name, exempt))
    return;
  if (strcmp(name, "disk") == 0 && strcmp(parent, "devices") == 0 && kept(w, n))
    return; /* the administrator keeps it as it is */
  xmlChar *type = xmlGetProp(n, (const xmlChar *)"type");
  const char *t = type ? (const char *)type : "";
  bool host_device =
    (strcmp(name, "interface") == 0 && strcmp(t, "hostdev") == 0) ||
    (strcmp(name, "input") == 0 && (strcmp(t, "passthrough") == 0 || strcmp(t, "evdev") == 0)) ||
    (strcmp(name, "backend") == 0 && strcmp(parent, "tpm") == 0 && strcmp(t, "passthrough") == 0);
  xmlFree(type);
  if (host_device) {
    find(w, n, "a host device passed through to the guest");
    return;
  }
  if (strcmp(name, "smartcard") == 0) {
    xmlChar *mode = xmlGetProp(n, (const xmlChar *)"mode");
    bool host = mode && !xmlStrEqual(mode, (const xmlChar *)"passthrough");
    xmlFree(mode);
    if (host) {
      find(w, n, "the host's smartcard reader or certificates handed to the guest");
      return;
    }
  }
  if (strcmp(name, "seclabel") == 0) {
    size_t before = w->f->n;
    check_seclabel(w, n);
    if (w->f->n != before)
      return;
  }
  size_t before = w->nstrip;
  check_values(w, n);
  if (w->nstrip != before)
    return;
  walk_children(w, n, depth);
}

int domain_filter(xmlDocPtr doc, const struct domain_filter_opts *o, bool strip,
                  struct domain_findings *f, struct sp_err *e)
{
  memset(f, 0, sizeof *f);
  struct walk w = { .o = o, .f = f };
  xmlNodePtr root = xmlDocGetRootElement(doc);
  if (doc->intSubset || doc->extSubset) {
    xmlNodePtr dtd = (xmlNodePtr)(doc->intSubset ? doc->intSubset : doc->extSubset);
    find(&w, root ? root : dtd, "a document type declaration: its entities can pull in host "
         "files");
    if (strip && w.nstrip)
      w.strip[w.nstrip - 1] = dtd;
  }
  for (xmlNodePtr c = doc->children; c && !w.oom; c = c->next)
    if (c->type == XML_PI_NODE)
      find(&w, c, "a processing instruction");
  if (!root || !named(root, "domain") || root->ns) {
    if (root)
      find(&w, root, "the document is not a libvirt <domain>");
  } else {
    check_values(&w, root);
    walk_children(&w, root, 0);
  }
  if (w.oom) {
    free(w.strip);
    domain_findings_free(f);
    return sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "domain XML");
  }
  for (size_t i = 0; strip && i < w.nstrip; i++) {
    xmlNodePtr n = w.strip[i];
    if (n == root)
      continue;
    /* The same element may hold two findings: strip it once. */
    bool seen = false;
    for (size_t k = 0; k < i; k++)
      seen |= w.strip[k] == n;
    if (seen)
      continue;
    xmlUnlinkNode(n);
    if (n->type == XML_DTD_NODE) {
      if (doc->intSubset == (xmlDtdPtr)n)
        doc->intSubset = NULL;
      if (doc->extSubset == (xmlDtdPtr)n)
        doc->extSubset = NULL;
      xmlFreeDtd((xmlDtdPtr)n);
    } else {
      xmlFreeNode(n);
    }
  }
  free(w.strip);
  return 0;
}

void domain_findings_free(struct domain_findings *f)
{
  for (size_t i = 0; i < f->n; i++) {
    free(f->v[i].where);
    free(f->v[i].what);
  }
  free(f->v);
  memset(f, 0, sizeof *f);
}

char *domain_findings_text(const struct domain_findings *f)
{
  size_t cap = 1;
  for (size_t i = 0; i < f->n; i++)
    cap += strlen(f->v[i].where) + strlen(f->v[i].what) + 6;
  char *s = malloc(cap);
  if (!s)
    return NULL;
  size_t off = 0;
  s[0] = '\0';
  for (size_t i = 0; i < f->n; i++)
    off += (size_t)snprintf(s + off, cap - off, "  %s: %s\n", f->v[i].where, f->v[i].what);
  return s;
}

int domain_filter_emulators(const char *caps_xml, size_t len, char ***out, size_t *n,
                            struct sp_err *e)
{
  *out = NULL;
  *n = 0;
  xmlDocPtr doc = len <= (size_t)INT32_MAX
                    ? xmlReadMemory(caps_xml, (int)len, "capabilities.xml", NULL,
                                    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING)
                    : NULL;
  xmlXPathContextPtr ctx = doc ? xmlXPathNewContext(doc) : NULL;
  xmlXPathObjectPtr o = ctx ? xmlXPathEvalExpression(
                                (const xmlChar *)"/capabilities/guest/arch/emulator | "
                                                 "/capabilities/guest/arch/domain/emulator", ctx)
                            : NULL;
  int rc = 0;
  if (!o)
    rc = sp_err_set(e, SP_EXIT_FAILED, "libvirt's capabilities could not be read");
  struct sp_strv found = SP_STRV_INIT;
  for (int i = 0; rc == 0 && o && o->nodesetval && i < o->nodesetval->nodeNr; i++) {
    xmlChar *t = xmlNodeGetContent(o->nodesetval->nodeTab[i]);
    if (!t)
      rc = sp_err_sys(e, SP_EXIT_FAILED, ENOMEM, "capabilities");
    else
      sp_strv_push(&found, (const char *)t);
    xmlFree(t);
  }
  *out = sp_strv_steal(&found, n);
  if (o)
    xmlXPathFreeObject(o);
  if (ctx)
    xmlXPathFreeContext(ctx);
  if (doc)
    xmlFreeDoc(doc);
  return rc;
}
