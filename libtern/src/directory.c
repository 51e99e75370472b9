/* In-memory directory. Loading, parsing and signing live in directory_io.c. */
#include <stdlib.h>
#include <string.h>

#include <tern/directory.h>
#include <tern/error.h>

#include "directory_int.h"
#include "util.h"

int tern_directory_new(const char *federation, uint64_t version, tern_directory **out)
{
	tern_directory *d;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return TERN_ENOMEM;
	if ((d->federation = strdup(federation)) == NULL) {
		free(d);
		return TERN_ENOMEM;
	}
	d->version = version;
	*out = d;
	return TERN_OK;
}

static void member_clear(tern_member *m)
{
	free(m->agency);
	free(m->broker_endpoint);
	free(m->cert_der);
	memset(m, 0, sizeof(*m));
}

int tern_directory_add(tern_directory *d, const tern_member *m)
{
	tern_member *slot;
	const tern_member *dup;

	if (!tern_node_id_valid(m->node_id))
		return tern_fail(TERN_EINVAL, "invalid node id '%s'", m->node_id);
	if (tern_directory_find(d, m->node_id, &dup) == TERN_OK)
		return tern_fail(TERN_EEXIST, "node '%s' is already in the directory", m->node_id);
	if (d->count == d->cap) {
		size_t ncap = d->cap ? d->cap * 2 : 8;
		tern_member *nm = realloc(d->members, ncap * sizeof(*nm));
		if (nm == NULL)
			return TERN_ENOMEM;
		d->members = nm;
		d->cap = ncap;
	}
	slot = &d->members[d->count];
	*slot = *m;
	slot->agency = strdup(m->agency ? m->agency : "");
	slot->broker_endpoint = m->broker_endpoint ? strdup(m->broker_endpoint) : NULL;
	slot->cert_der = NULL;
	if (m->cert_len) {
		slot->cert_der = malloc(m->cert_len);
		if (slot->cert_der)
			memcpy(slot->cert_der, m->cert_der, m->cert_len);
	}
	if (slot->agency == NULL || (m->broker_endpoint && slot->broker_endpoint == NULL) ||
	    (m->cert_len && slot->cert_der == NULL)) {
		member_clear(slot);
		return TERN_ENOMEM;
	}
	d->count++;
	return TERN_OK;
}

void tern_directory_free(tern_directory **d)
{
	if (d == NULL || *d == NULL)
		return;
	for (size_t i = 0; i < (*d)->count; i++)
		member_clear(&(*d)->members[i]);
	free((*d)->members);
	free((*d)->federation);
	free(*d);
	*d = NULL;
}

uint64_t tern_directory_version(const tern_directory *d)
{
	return d->version;
}

int64_t tern_directory_crl_next_update(const tern_directory *d)
{
	return d->crl_next_update;
}

const char *tern_directory_federation(const tern_directory *d)
{
	return d->federation;
}

size_t tern_directory_count(const tern_directory *d)
{
	return d->count;
}

const tern_member *tern_directory_at(const tern_directory *d, size_t i)
{
	return i < d->count ? &d->members[i] : NULL;
}

/* Federations have tens of members: a linear scan beats any index here. */
int tern_member_expired(const tern_member *m, int64_t now)
{
	return m->expired || (m->cert_not_after && now > m->cert_not_after);
}

int tern_directory_find(const tern_directory *d, const char *node_id, const tern_member **out)
{
	for (size_t i = 0; i < d->count; i++) {
		if (strcmp(d->members[i].node_id, node_id) == 0) {
			*out = &d->members[i];
			return TERN_OK;
		}
	}
	return TERN_ENOENT;
}

int tern_directory_find_curve(const tern_directory *d, const uint8_t curve_public[32],
                              const tern_member **out)
{
	for (size_t i = 0; i < d->count; i++) {
		if (memcmp(d->members[i].curve_public, curve_public, 32) == 0) {
			*out = &d->members[i];
			return TERN_OK;
		}
	}
	return TERN_ENOENT;
}
