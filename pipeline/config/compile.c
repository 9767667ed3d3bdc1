/* Expressions and templates written in a config: compiled with errors that point into
 * the config file, where the user can find them. */
#include <stdio.h>
#include <string.h>

#include <sluice/config.h>
#include <sluice/expr.h>

/* Moves compile error `e` (positions inside the text) to the config file: the scalar's
 * line and column plus the position inside the text, one more for an opening quote.
 * Past the first line of a multi-line scalar the indentation is not known, so the column
 * is the one inside the text. */
static void locate(const struct sl_config *node, const char *what, const struct sl_error *e,
                   struct sl_error *err)
{
    if (!err) return;
    int line = sl_config_line(node) + (e->line > 1 ? e->line - 1 : 0);
    int col = e->line > 1 ? e->col
                          : sl_config_col(node) + (sl_config_quoted(node) ? 1 : 0) +
                                (e->col > 0 ? e->col - 1 : 0);
    sl_error_at(err, e->code == SL_ENOMEM ? SL_ENOMEM : SL_ECONFIG, sl_config_file(node), line, col,
                "%.100s: %.400s", what, e->msg);
}

static const char *scalar_text(const struct sl_config *node, const char *what, const char *kind,
                               struct sl_error *err)
{
    const char *text = sl_config_kind(node) == SL_CFG_SCALAR ? sl_config_str(node) : NULL;
    if (!text) sl_config_error(node, err, SL_ECONFIG, "%s: expected %s", what, kind);
    return text;
}

struct sl_expr *sl_expr_compile_config(const struct sl_config *node, const char *what,
                                       struct sl_error *err)
{
    const char *text = scalar_text(node, what, "an expression", err);
    if (!text) return NULL;
    struct sl_error e = {0};
    struct sl_expr *x = sl_expr_compile(text, strlen(text), &e);
    if (!x) locate(node, what, &e, err);
    return x;
}

struct sl_template *sl_template_compile_config(const struct sl_config *node, const char *what,
                                               struct sl_error *err)
{
    const char *text = scalar_text(node, what, "a template", err);
    if (!text) return NULL;
    struct sl_error e = {0};
    struct sl_template *t = sl_template_compile(text, strlen(text), &e);
    if (!t) locate(node, what, &e, err);
    return t;
}
