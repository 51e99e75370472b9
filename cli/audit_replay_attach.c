/* tern audit replay and attachments (docs/attachments.md): how an entry's
 * attachments show in the timeline, and the findings about a message whose
 * logs disagree on them. Entries hold each attachment's index, size, sealed
 * root and (at sender and recipient, who can read it) the plaintext's
 * SHA-256; never its name, so neither does replay. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "audit_replay_int.h"
#include "util.h"

/* Each kind's name and its rule, as docs/audit.md's table of findings says it. */
static const struct {
	const char *kind;
	const char *rule;
} att_findings[ATT_FINDING_COUNT] = {
    [ATT_MISSING] =
        {"missing-attachments",
         "a `RECEIVED` with fewer attachments (or none) than the sender's `SENT` or a broker's "
         "`RELAYED` of the message declares: delivered without its declared attachments"},
    [ATT_MISMATCH] =
        {"attachment-mismatch",
         "the entries of one message disagree on an attachment's size or sealed root, or the "
         "sender's and a recipient's on its SHA-256 (a broker's entry has none); or a recipient "
         "records an attachment the declaring entry does not hold"},
};

const char *att_finding_kind(enum att_finding f)
{
	return (unsigned)f < ATT_FINDING_COUNT ? att_findings[f].kind : "";
}

/* --- the timeline --------------------------------------------------------------------- */

static json_t *hex_json(const ProtobufCBinaryData *b)
{
	char hex[2 * 64 + 1];

	/* Only the 32-byte hashes the nodes write: anything else is shown as
	 * its length, not dumped (a crafted entry may hold anything). */
	if (b->len == 0 || b->len > 64)
		return NULL;
	tern_hex(b->data, b->len, hex);
	return json_string(hex);
}

json_t *att_json(const entry *e)
{
	json_t *a;

	if (e->n_attachments == 0)
		return NULL;
	if ((a = json_array()) == NULL)
		return NULL;
	for (size_t i = 0; i < e->n_attachments; i++) {
		const Tern__V1__AuditAttachment *x = e->attachments[i];
		json_t *o = json_pack("{s:I, s:I}", "index", (json_int_t)x->index, "size",
		                      (json_int_t)x->size);
		json_t *root = hex_json(&x->root), *sha = hex_json(&x->sha256);
		if (o == NULL) {
			json_decref(root);
			json_decref(sha);
			continue;
		}
		if (root)
			json_object_set_new(o, "root", root);
		if (sha)
			json_object_set_new(o, "sha256", sha);
		json_array_append_new(a, o);
	}
	return a;
}

void att_print(const json_t *event)
{
	const json_t *a = json_object_get(event, "attachments"), *x;
	size_t i;

	if (json_array_size(a) == 0)
		return;
	printf("      %zu attachment%s:", json_array_size(a), json_array_size(a) == 1 ? "" : "s");
	json_array_foreach(a, i, x)
	{
		const char *sha = json_string_value(json_object_get(x, "sha256"));
		printf(" #%lld %lld bytes%s%s%s",
		       (long long)json_integer_value(json_object_get(x, "index")),
		       (long long)json_integer_value(json_object_get(x, "size")),
		       sha ? " sha256 " : "", sha ? sha : "",
		       i + 1 < json_array_size(a) ? ";" : "");
	}
	putchar('\n');
}

/* --- the findings ----------------------------------------------------------------------- */

/* Whether an entry speaks for the message's attachments: a refused chunk's
 * REJECTED entry (type "chunk") is about one chunk, not the message. */
static int about_message(const entry *e)
{
	return e->n_attachments > 0 && strcmp(e->type, "chunk") != 0 &&
	       (e->kind == K(SENT) || e->kind == K(RELAYED) || e->kind == K(RECEIVED) ||
	        e->kind == K(REJECTED));
}

static const Tern__V1__AuditAttachment *att_at(const entry *e, uint32_t index)
{
	for (size_t i = 0; i < e->n_attachments; i++)
		if (e->attachments[i]->index == index)
			return e->attachments[i];
	return NULL;
}

static int bytes_eq(const ProtobufCBinaryData *a, const ProtobufCBinaryData *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* The entry that declares the message's attachments: the sender's SENT,
 * else a broker's RELAYED; of those, the one declaring the most, so that a
 * sender's log that lost one still leaves the broker's as the declaration. */
static const struct ev *declaration(const struct ev *const *g, size_t n)
{
	const struct ev *d = NULL;

	for (int pass = 0; pass < 2 && d == NULL; pass++)
		for (size_t i = 0; i < n; i++)
			if ((int)g[i]->e->kind == (pass == 0 ? K(SENT) : K(RELAYED)) &&
			    g[i]->e->n_attachments > 0 &&
			    (d == NULL || g[i]->e->n_attachments > d->e->n_attachments))
				d = g[i];
	return d;
}

/* Where v and the declaration d disagree on an attachment: 0 if they agree,
 * else 1 with what differs in why. The SHA-256 is compared between nodes'
 * entries only: a broker cannot read an attachment and records none. */
static int disagree(const struct ev *d, const struct ev *v, char *why, size_t len)
{
	int sha = d->e->kind != K(RELAYED) && v->e->kind != K(RELAYED);

	for (size_t i = 0; i < v->e->n_attachments; i++) {
		const Tern__V1__AuditAttachment *x = v->e->attachments[i], *y;
		if ((y = att_at(d->e, x->index)) == NULL) {
			snprintf(why, len, "attachment #%u is not in %s's entry", x->index,
			         owner(d));
			return 1;
		}
		if (x->size != y->size) {
			snprintf(why, len, "attachment #%u is %llu bytes, %llu in %s's entry",
			         x->index, (unsigned long long)x->size, (unsigned long long)y->size,
			         owner(d));
			return 1;
		}
		if (!bytes_eq(&x->root, &y->root)) {
			snprintf(why, len,
			         "attachment #%u has another sealed root than in %s's entry",
			         x->index, owner(d));
			return 1;
		}
		if (sha && x->sha256.len && y->sha256.len && !bytes_eq(&x->sha256, &y->sha256)) {
			snprintf(why, len, "attachment #%u has another SHA-256 than in %s's entry",
			         x->index, owner(d));
			return 1;
		}
	}
	return 0;
}

void check_attachments(struct replay *r, const struct ev *const *g, size_t n)
{
	const struct ev *d = declaration(g, n);
	const char *msgid = g[0]->e->message_id, *type = type_of(g, n);
	char why[160];

	if (d == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		const struct ev *v = g[i];
		if (v->e->kind == K(RECEIVED) && v->e->n_attachments < d->e->n_attachments) {
			const struct ev *p[2] = {d, v};
			find(r, att_finding_kind(ATT_MISSING), p, 2,
			     "%s received %s %s with %zu of the %zu attachment%s %s's %s declares",
			     owner(v), type, msgid, v->e->n_attachments, d->e->n_attachments,
			     d->e->n_attachments == 1 ? "" : "s", owner(d),
			     d->e->kind == K(SENT) ? "SENT" : "RELAYED");
		}
		if (v != d && about_message(v->e) && disagree(d, v, why, sizeof(why))) {
			const struct ev *p[2] = {d, v};
			find(r, att_finding_kind(ATT_MISMATCH), p, 2, "%s %s as %s recorded it: %s",
			     type, msgid, owner(v), why);
		}
	}
}
