/* The files of the pipeline page (GET /), compiled into the program: tools/embed.c
 * writes them from cli/ui/ into page_assets.c at build time, and page.c serves them.
 * Private to cli/. */
#ifndef SLUICE_CLI_PAGE_H
#define SLUICE_CLI_PAGE_H

#include <stddef.h>

/* One file of the page. */
struct cli_asset {
    const char *path;          /* URL path: "/", "/ui/app.js"; NULL ends the table */
    const char *type;          /* its Content-Type */
    const char *etag;          /* a quoted hash of its bytes, for revalidation */
    const unsigned char *data; /* its bytes */
    size_t size;               /* how many */
};

/* The page's files, in the order given to embed; an entry whose path is NULL ends it. */
extern const struct cli_asset cli_assets[];

#endif
