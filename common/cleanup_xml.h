/* Scope-bound release of libxml2 documents and XPath contexts and
 * objects, in cleanup.h's vocabulary: `_cleanup_xml_doc_ xmlDocPtr d = ...;`.
 * Beside cleanup.h rather than in it, so only what uses libxml2 includes it. */
#ifndef SP_CLEANUP_XML_H
#define SP_CLEANUP_XML_H

#include <libxml/tree.h>
#include <libxml/xpath.h>

#include "cleanup.h"

static inline void sp_xml_docp(xmlDocPtr *d) { if (*d) xmlFreeDoc(*d); }
static inline void sp_xpath_ctxp(xmlXPathContextPtr *c) { if (*c) xmlXPathFreeContext(*c); }
static inline void sp_xpath_objp(xmlXPathObjectPtr *o) { if (*o) xmlXPathFreeObject(*o); }

#define _cleanup_xml_doc_ _cleanup_(sp_xml_docp)
#define _cleanup_xpath_ctx_ _cleanup_(sp_xpath_ctxp)
#define _cleanup_xpath_obj_ _cleanup_(sp_xpath_objp)

#endif
