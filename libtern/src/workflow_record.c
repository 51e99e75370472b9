/* The case workflow's records (tern/workflow.h): tern.v1.WorkflowRecord
 * made, copied and freed, the few changes the judge makes to one, and sets
 * of them by message id (what `tern audit replay` holds, and a node's batch
 * before it writes them). workflow.c holds the rules that read them. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/error.h>
#include <tern/workflow.h>

#include "util.h"
#include "workflow_int.h"

/* The states' numbers are the proto's: a record holds a tern_case_state. */
_Static_assert((int)TERN__V1__CASE_STATE__CASE_STATE_NONE == TERN_CASE_NONE &&
                   (int)TERN__V1__CASE_STATE__CASE_STATE_REFERRED == TERN_CASE_REFERRED &&
                   (int)TERN__V1__CASE_STATE__CASE_STATE_INFO_REQUESTED ==
                       TERN_CASE_INFO_REQUESTED &&
                   (int)TERN__V1__CASE_STATE__CASE_STATE_DEFERRED == TERN_CASE_DEFERRED &&
                   (int)TERN__V1__CASE_STATE__CASE_STATE_ACCEPTED == TERN_CASE_ACCEPTED &&
                   (int)TERN__V1__CASE_STATE__CASE_STATE_REJECTED == TERN_CASE_REJECTED &&
                   (int)TERN__V1__CASE_STATE__CASE_STATE_BOOKED == TERN_CASE_BOOKED &&
                   (int)TERN__V1__CASE_STATE__CASE_STATE_DEPARTED == TERN_CASE_DEPARTED &&
                   (int)TERN__V1__CASE_STATE__CASE_STATE_ARRIVED == TERN_CASE_ARRIVED &&
                   (int)TERN__V1__CASE_STATE__CASE_STATE_CANCELLED == TERN_CASE_CANCELLED &&
                   (int)TERN__V1__CASE_STATE__CASE_STATE_WITHDRAWN == TERN_CASE_WITHDRAWN &&
                   (int)TERN__V1__CASE_STATE__CASE_STATE_HANDED_OVER == TERN_CASE_HANDED_OVER &&
                   TERN_CASE_STATE_COUNT == 12,
               "tern.v1.CaseState and tern_case_state differ");

tern_wf_record *tern_wf_record_copy(const tern_wf_record *r)
{
	uint8_t stackbuf[1024], *buf = stackbuf;
	size_t n = protobuf_c_message_get_packed_size(&r->base);
	tern_wf_record *out;

	/* Packed and unpacked: the copy is allocated as any unpacked record,
	 * field by field with malloc, so that one free fits every record. */
	if (n > sizeof(stackbuf) && (buf = malloc(n)) == NULL)
		return NULL;
	protobuf_c_message_pack(&r->base, buf);
	out = tern__v1__workflow_record__unpack(NULL, n, buf);
	if (buf != stackbuf)
		free(buf);
	return out;
}

void tern_wf_record_free(tern_wf_record **r)
{
	if (r && *r) {
		protobuf_c_message_free_unpacked(&(*r)->base, NULL);
		*r = NULL;
	}
}

const char *tern_wf_record_last(const tern_wf_record *r, const char *type)
{
	for (size_t i = 0; r && i < r->n_last; i++)
		if (strcmp(r->last[i]->key, type) == 0)
			return r->last[i]->value;
	return "";
}

/* Replaces the string *field of a record with a copy of v. */
int wf_set_str(char **field, const char *v)
{
	char *copy = strdup(v);

	if (copy == NULL)
		return TERN_ENOMEM;
	/* An empty string of protobuf-c's is its shared one, never freed. */
	if (*field != protobuf_c_empty_string)
		free(*field);
	*field = copy;
	return TERN_OK;
}

int wf_strs_add(struct wf_strs a, const char *s)
{
	char **v = realloc(*a.v, (*a.n + 1) * sizeof(*v)), *copy;

	if (v == NULL)
		return TERN_ENOMEM;
	*a.v = v;
	if ((copy = strdup(s)) == NULL)
		return TERN_ENOMEM;
	v[(*a.n)++] = copy;
	return TERN_OK;
}

int wf_strs_has(struct wf_strs a, const char *s)
{
	for (size_t i = 0; i < *a.n; i++)
		if (strcmp((*a.v)[i], s) == 0)
			return 1;
	return 0;
}

int wf_set_last(tern_wf_record *r, const char *type, const char *msgid)
{
	Tern__V1__WorkflowRecord__LastEntry **v, *e;

	for (size_t i = 0; i < r->n_last; i++)
		if (strcmp(r->last[i]->key, type) == 0)
			return wf_set_str(&r->last[i]->value, msgid);
	if ((v = realloc(r->last, (r->n_last + 1) * sizeof(*v))) == NULL)
		return TERN_ENOMEM;
	r->last = v;
	if ((e = malloc(sizeof(*e))) == NULL)
		return TERN_ENOMEM;
	tern__v1__workflow_record__last_entry__init(e);
	v[r->n_last++] = e;
	return wf_set_str(&e->key, type) == TERN_OK ? wf_set_str(&e->value, msgid) : TERN_ENOMEM;
}

/* Record sets: the records in the order first kept, and an open-addressing
 * index of them by id (1 + their place; 0 for a free slot), at most half
 * full. */
struct wf_entry {
	char id[TERN_WF_ID_MAX + 1];
	tern_wf_record *rec;
};

struct tern_wf_records {
	struct wf_entry *v;
	size_t n, cap;
	uint32_t *slots;
	size_t nslots; /* a power of two */
};

static uint32_t id_hash(const char *id)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *id; id++)
		h = (h ^ (uint8_t)*id) * 16777619u;
	return h;
}

/* The slot id has or would take. */
static size_t slot_of(const tern_wf_records *s, const char *id)
{
	size_t i = id_hash(id) & (s->nslots - 1);

	while (s->slots[i] && strcmp(s->v[s->slots[i] - 1].id, id) != 0)
		i = (i + 1) & (s->nslots - 1);
	return i;
}

tern_wf_records *tern_wf_records_new(void)
{
	return calloc(1, sizeof(tern_wf_records));
}

void tern_wf_records_free(tern_wf_records **s)
{
	if (s == NULL || *s == NULL)
		return;
	for (size_t i = 0; i < (*s)->n; i++)
		tern_wf_record_free(&(*s)->v[i].rec);
	free((*s)->v);
	free((*s)->slots);
	free(*s);
	*s = NULL;
}

int tern_wf_records_reserve(tern_wf_records *s, size_t n)
{
	size_t want = s->n + n, cap = s->cap ? s->cap : 16, nslots = s->nslots ? s->nslots : 32;
	struct wf_entry *v;
	uint32_t *slots;

	if (want > UINT32_MAX / 4)
		return TERN_ENOMEM;
	while (cap < want)
		cap *= 2;
	if (cap > s->cap) {
		if ((v = realloc(s->v, cap * sizeof(*v))) == NULL)
			return TERN_ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	while (nslots < 2 * want)
		nslots *= 2;
	if (nslots > s->nslots) {
		if ((slots = calloc(nslots, sizeof(*slots))) == NULL)
			return TERN_ENOMEM;
		free(s->slots);
		s->slots = slots;
		s->nslots = nslots;
		for (size_t i = 0; i < s->n; i++)
			s->slots[slot_of(s, s->v[i].id)] = (uint32_t)(i + 1);
	}
	return TERN_OK;
}

int tern_wf_records_put(tern_wf_records *s, const char *id, tern_wf_record **rec)
{
	tern_wf_record *r = *rec;
	size_t i;
	int rc;

	*rec = NULL;
	if (strlen(id) > TERN_WF_ID_MAX) {
		tern_wf_record_free(&r);
		return tern_fail(TERN_EINVAL, "a record id of %zu bytes", strlen(id));
	}
	if ((rc = tern_wf_records_reserve(s, 1)) != TERN_OK) {
		tern_wf_record_free(&r);
		return rc;
	}
	i = slot_of(s, id);
	if (s->slots[i]) {
		struct wf_entry *e = &s->v[s->slots[i] - 1];
		tern_wf_record_free(&e->rec);
		e->rec = r;
		return TERN_OK;
	}
	snprintf(s->v[s->n].id, sizeof(s->v[s->n].id), "%s", id);
	s->v[s->n].rec = r;
	s->slots[i] = (uint32_t)++s->n;
	return TERN_OK;
}

const tern_wf_record *tern_wf_records_get(const tern_wf_records *s, const char *id)
{
	size_t i;

	if (s == NULL || s->n == 0)
		return NULL;
	i = slot_of(s, id);
	return s->slots[i] ? s->v[s->slots[i] - 1].rec : NULL;
}

size_t tern_wf_records_count(const tern_wf_records *s)
{
	return s ? s->n : 0;
}

int tern_wf_records_each(const tern_wf_records *s,
                         int (*fn)(const char *id, const tern_wf_record *rec, void *arg), void *arg)
{
	int rc;

	for (size_t i = 0; s && i < s->n; i++)
		if ((rc = fn(s->v[i].id, s->v[i].rec, arg)) != TERN_OK)
			return rc;
	return TERN_OK;
}

int tern_wf_records_lookup(void *arg, const char *msgid, tern_wf_record **rec)
{
	const tern_wf_record *r = tern_wf_records_get(arg, msgid);

	if (r == NULL)
		return TERN_ENOENT;
	return (*rec = tern_wf_record_copy(r)) ? TERN_OK : TERN_ENOMEM;
}
