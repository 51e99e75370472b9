#include <stdlib.h>
#include <string.h>

#include <tern/error.h>
#include <tern/json.h>

#include "pbuf.h"
#include "util.h"

/* Each block carries its size in front, so the budget can be charged while
 * decoding and a stateless free (budget_data == NULL) can release it later. */
struct budget {
	size_t left;
	int exceeded; /* the input asked for more than its budget */
	int oom;      /* the process had no memory to give */
};

static void *budget_alloc(void *data, size_t size)
{
	struct budget *b = data;
	size_t *p;

	if (b != NULL) {
		if (size > b->left) {
			b->exceeded = 1;
			return NULL;
		}
		b->left -= size;
	}
	if (size > SIZE_MAX - sizeof(size_t) || (p = malloc(sizeof(size_t) + size)) == NULL) {
		if (b != NULL)
			b->oom = 1;
		return NULL;
	}
	p[0] = size;
	return p + 1;
}

static void budget_free(void *data, void *ptr)
{
	struct budget *b = data;
	size_t *p = ptr;

	if (p == NULL)
		return;
	if (b != NULL)
		b->left += p[-1];
	free(p - 1);
}

static ProtobufCAllocator release_alloc = {budget_alloc, budget_free, NULL};

int tern_pb_unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                   size_t max_len, ProtobufCMessage **out)
{
	struct budget b = {TERN_PB_BUDGET_FLOOR + len * TERN_PB_BUDGET_FACTOR, 0, 0};
	ProtobufCAllocator alloc = {budget_alloc, budget_free, &b};
	ProtobufCMessage *m;

	if (len > max_len)
		return tern_fail(TERN_ETOOBIG, "%s of %zu bytes is over the limit of %zu",
		                 desc->name, len, max_len);
	m = protobuf_c_message_unpack(desc, &alloc, len, buf);
	/* Over the budget is the input's fault (its sender's: a reader that
	 * waits for memory and tries again would wait for ever), so it is
	 * malformed, as a bomb is; no memory is the process's, and may pass. */
	if (m == NULL && b.oom)
		return tern_fail(TERN_ENOMEM, "out of memory decoding %s", desc->name);
	if (m == NULL && b.exceeded)
		return tern_fail(
		    TERN_EMALFORMED, "%s of %zu bytes decodes to more than its budget of %zu bytes",
		    desc->name, len, (size_t)(TERN_PB_BUDGET_FLOOR + len * TERN_PB_BUDGET_FACTOR));
	if (m == NULL)
		return tern_fail(TERN_EMALFORMED, "bytes do not decode as %s", desc->name);
	*out = m;
	return TERN_OK;
}

void tern_pb_free(ProtobufCMessage **msg)
{
	if (msg == NULL || *msg == NULL)
		return;
	protobuf_c_message_free_unpacked(*msg, &release_alloc);
	*msg = NULL;
}

static int has_unknown_fields(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	if (m->n_unknown_fields != 0)
		return 1;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)m + f->offset;

		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
			ProtobufCMessage *const *arr = *(ProtobufCMessage *const *const *)base;
			for (size_t k = 0; k < n; k++)
				if (arr[k] && has_unknown_fields(arr[k]))
					return 1;
		} else {
			const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)base;
			if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
			    *(const uint32_t *)((const char *)m + f->quantifier_offset) != f->id)
				continue;
			if (sub && has_unknown_fields(sub))
				return 1;
		}
	}
	return 0;
}

int tern_pb_strings_utf8(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)m + f->offset;
		size_t count = 1;
		const void *const *items;

		if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			count = *(const size_t *)((const char *)m + f->quantifier_offset);
			items = *(const void *const *const *)base;
		} else {
			items = (const void *const *)base;
		}
		for (size_t k = 0; k < count && items != NULL; k++) {
			const void *v = items[k];
			if (v == NULL)
				continue;
			if (f->type == PROTOBUF_C_TYPE_STRING) {
				if (!tern_utf8_valid(v, strlen(v)))
					return tern_fail(TERN_EMALFORMED,
					                 "%s.%s is not valid UTF-8", d->name,
					                 f->name);
			} else if (tern_pb_strings_utf8(v) != TERN_OK) {
				return TERN_EMALFORMED;
			}
		}
	}
	return TERN_OK;
}

int tern_pb_unpack_canonical(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                             size_t max_len, ProtobufCMessage **out)
{
	ProtobufCMessage *m = NULL;
	uint8_t *again = NULL;
	size_t n;
	int rc;

	if ((rc = tern_pb_unpack(desc, buf, len, max_len, &m)) != TERN_OK)
		return rc;
	if (has_unknown_fields(m)) {
		rc = tern_fail(TERN_EMALFORMED, "%s carries unknown fields", desc->name);
		goto fail;
	}
	if ((rc = tern_pb_pack(m, &again, &n)) != TERN_OK)
		goto fail;
	if (n != len || (len > 0 && memcmp(again, buf, len) != 0)) {
		rc = tern_fail(TERN_EMALFORMED, "%s is not in canonical form", desc->name);
		goto fail;
	}
	free(again);
	*out = m;
	return TERN_OK;
fail:
	free(again);
	tern_pb_free(&m);
	return rc;
}

int tern_pb_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *out_len)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = malloc(n ? n : 1);

	if (buf == NULL)
		return tern_fail(TERN_ENOMEM, "out of memory encoding %s", msg->descriptor->name);
	protobuf_c_message_pack(msg, buf);
	*out = buf;
	*out_len = n;
	return TERN_OK;
}
