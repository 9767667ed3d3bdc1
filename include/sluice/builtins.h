/* sluice: the built-in stage types.
 *
 * Each is an ordinary `const struct sl_stage_type`, registered with sl_registry_add()
 * like any user's type (the CLI's registry lists them all). A source and a sink may
 * share a name (`file`): the registry tells them apart by kind. The tables are
 * immutable and valid for the life of the program. */
#ifndef SLUICE_BUILTINS_H
#define SLUICE_BUILTINS_H

#include <stddef.h>

#include <sluice/error.h>
#include <sluice/stage.h>

struct sl_registry; /* registry.h */

/* Adds every built-in type below to `reg` (borrowed), in the order `sluice list` shows
 * them: what the `sluice` program knows, in one call. Returns 0, or the first failure
 * of sl_registry_add (SL_EEXIST when `reg` holds a type of the same name and kind
 * already) with `err` filled; the types added before it stay. */
SL_API int sl_registry_add_builtins(struct sl_registry *reg, struct sl_error *err);

/* Number of built-in types, and the i-th (borrowed, static), or NULL past the end. */
SL_API size_t sl_builtin_count(void);
SL_API const struct sl_stage_type *sl_builtin_at(size_t i);

/* ---- connectors/file ------------------------------------------------------------------ */

/* Source `file`: reads files named by paths or globs, follows them like `tail -F`
 * (appends, new files, rotation by rename or truncation, deletion), one event per line,
 * with per-file checkpoints of acknowledged offsets in SQLite. */
SL_API extern const struct sl_stage_type sl_stage_file_source;

/* Sink `file`: writes events to files whose path is a template (strftime fields from
 * the event time, `{{ expression }}` from the event), as json, text or csv, with rotation
 * by size and time, configurable fsync, and acknowledgement only once written (and
 * synced). */
SL_API extern const struct sl_stage_type sl_stage_file_sink;

/* Source `stdin`: one event per line of standard input (or another descriptor). */
SL_API extern const struct sl_stage_type sl_stage_stdin;

/* Sink `stdout`: writes events to standard output as json, text or csv. */
SL_API extern const struct sl_stage_type sl_stage_stdout;

/* ---- connectors/sqlite ------------------------------------------------------------------ */

/* Source `sqlite`: the rows of a table or a query as events (columns as typed fields, the
 * row as a JSON payload), page by page in the order of a unique, increasing tracking
 * column (keyset pagination), to the end (`snapshot`) or polling for new rows (`follow`),
 * with the last acknowledged tracking value as its checkpoint. */
SL_API extern const struct sl_stage_type sl_stage_sqlite_source;

/* ---- connectors/kafka ------------------------------------------------------------------- */

/* Source `kafka`: consumes topics (names or ^regexes) as a member of a consumer group, one
 * event per message (payload = value, key, time = timestamp, origin = topic/partition/
 * offset), committing per partition the offsets of what every sink acknowledged, every
 * commit_interval and at a clean stop; revoked partitions are released once their events
 * in flight are committed (rebalance_timeout at most). */
SL_API extern const struct sl_stage_type sl_stage_kafka_source;

/* Sink `kafka`: produces events to Kafka topics (a template per event; key and headers
 * from expressions; json or text values) through librdkafka, each batch acknowledged
 * only once every message of it has a successful delivery report; messages Kafka will
 * never take go to `on_error` (drop, a dead-letter topic, or fail). `brokers: mock`
 * runs librdkafka's in-process mock cluster. */
SL_API extern const struct sl_stage_type sl_stage_kafka_sink;

/* ---- connectors/http ---------------------------------------------------------------------- */

/* Source `http_client`: reads a JSON or NDJSON API over HTTP, page by page (a Link header,
 * a cursor in the response, or a page number), each record one event with its JSON text
 * as the payload, checkpointing the position of the acknowledged pages; or crawls a list
 * of URLs with bounded concurrency, each response one event. Rate limit, retries with
 * backoff (Retry-After honoured), evhttp on the pipeline's loop. */
SL_API extern const struct sl_stage_type sl_stage_http_client;

/* Source `http_server`: events POSTed over HTTP (ndjson, json or text bodies, checked whole:
 * a bad body is answered 400 and none of it enters), each request answered 200 once every
 * sink acknowledged its events (or 202 on receipt), 429 with Retry-After while the events
 * accepted and unacknowledged are at their bound; bearer token, body, header, connection
 * and timeout limits. */
SL_API extern const struct sl_stage_type sl_stage_http_server;

/* ---- connectors/generate, connectors/blackhole ------------------------------------------- */

/* Source `generate`: emits `count` lines (0: endlessly) in a realistic format (json,
 * text, apache, syslog) from a seeded generator, or the literal `lines` round-robin, a
 * batch every `interval` (0: as fast as the pipeline takes them). */
SL_API extern const struct sl_stage_type sl_stage_generate;

/* Sink `blackhole`: acknowledges every batch at once, counting events and bytes; with
 * `print_interval` it logs the running totals. For benchmarks, dry runs and tests. */
SL_API extern const struct sl_stage_type sl_stage_blackhole;

/* ---- connectors/sqlite ---------------------------------------------------------------------- */

/* Transform `sqlite_lookup` (asynchronous): enriches each event with the first row of a
 * SELECT whose :field parameters are the event's fields, through the pipeline's pool of
 * the database file; an LRU cache of rows by key (cache_ttl), on_miss keep | drop |
 * dead_letter; events leave in input order, max_in_flight lookups at once. */
SL_API extern const struct sl_stage_type sl_stage_sqlite_lookup;

/* Sink `sqlite`: writes events as rows of a SQLite table (columns from fields or
 * expressions; insert, upsert or replace), one transaction per batch on the database's
 * connection pool, the batch acknowledged once COMMIT succeeded; a row the database
 * refuses goes to `on_error` (drop, a dead-letter table in the same transaction, or
 * fail). */
SL_API extern const struct sl_stage_type sl_stage_sqlite_sink;

/* ---- connectors/socket ------------------------------------------------------------------ */

/* Source `socket`: messages over TCP (newline or RFC 6587 octet-counted framing, at most
 * max_connections, idle connections closed) or UDP (a datagram each); the sender's address
 * is the events' origin. Reads stop while the pipeline is full (TCP: the kernel's window
 * holds the clients; UDP: the kernel drops, counted). */
SL_API extern const struct sl_stage_type sl_stage_socket;

/* Source `syslog`: the socket source with each message parsed as RFC 5424 or RFC 3164
 * into fields. */
SL_API extern const struct sl_stage_type sl_stage_syslog;

/* Transform `parse_syslog`: RFC 5424 / RFC 3164 text (the payload or a field) into the
 * fields the syslog source sets; hand-written, no regex. */
SL_API extern const struct sl_stage_type sl_stage_parse_syslog;

/* Sink `http`: sends events to an http:// URI (a template: events of different URIs go in
 * different requests) in batched POST or PUT requests (ndjson, json_array or text,
 * optionally gzip), max_in_flight at once on keep-alive connections; connection errors,
 * timeouts, 408, 429 (Retry-After) and 5xx are retried with backoff and full jitter, other
 * refusals go to `on_error` (fail, drop, dead_letter_uri); a batch is acknowledged once
 * every one of its events was answered 2xx. */
SL_API extern const struct sl_stage_type sl_stage_http_sink;

/* ---- stages/: transforms and filters ---------------------------------------------------- */

/* Parsers: each turns the payload (or, with `field`, a string field) into fields, and
 * handles what it cannot parse by `on_error: drop | dead_letter | fail`. */
SL_API extern const struct sl_stage_type sl_stage_parse_json;      /* JSON object, zero-copy */
SL_API extern const struct sl_stage_type sl_stage_parse_regex;     /* PCRE2 named groups */
SL_API extern const struct sl_stage_type sl_stage_parse_logfmt;    /* key=value "quoted" flag */
SL_API extern const struct sl_stage_type sl_stage_parse_kv;        /* key/value, own separators */
SL_API extern const struct sl_stage_type sl_stage_parse_csv;       /* one record, named columns */
SL_API extern const struct sl_stage_type sl_stage_parse_timestamp; /* a field into the time */

/* Expressions (expr.h): keep, route and reshape events. */
SL_API extern const struct sl_stage_type sl_stage_filter; /* keep where a condition holds */
SL_API extern const struct sl_stage_type sl_stage_route;  /* named outputs by condition */
SL_API extern const struct sl_stage_type sl_stage_remap;  /* set/rename/remove/copy/keep_only */

/* Volume and shape. */
SL_API extern const struct sl_stage_type sl_stage_sample;    /* keep 1 in N / a ratio, by key */
SL_API extern const struct sl_stage_type sl_stage_throttle;  /* N events per window and key */
SL_API extern const struct sl_stage_type sl_stage_dedupe;    /* drop recently seen keys */
SL_API extern const struct sl_stage_type sl_stage_multiline; /* join lines into events */
SL_API extern const struct sl_stage_type sl_stage_aggregate; /* metrics per group and window */

#endif
