/* tern audit verify: offline checks of one or more audit archives, and of
 * each against what the others' witnesses recorded (docs/audit.md). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tern/error.h>
#include <tern/merkle.h>
#include <tern/note.h>

#include "audit_archive.h"
#include "audit_cmd.h"
#include "cli.h"

#define DASH "\xe2\x80\x94 "

struct tally {
	const char *file;
	unsigned n;
};
static struct tally *tallies;
static size_t ntallies;

static void finding(const char *file, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void finding(const char *file, const char *fmt, ...)
{
	va_list ap;
	size_t i;

	printf("%s: ", file);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	for (i = 0; i < ntallies && tallies[i].file != file; i++)
		;
	if (i < ntallies)
		tallies[i].n++;
}

static unsigned tally_of(const char *file)
{
	for (size_t i = 0; i < ntallies; i++)
		if (tallies[i].file == file)
			return tallies[i].n;
	return 0;
}

static audit_finding_fn *report = finding;

/* A checkpoint's signature lines besides the owner's must each be a valid
 * cosignature by a member: nothing in an archive goes unchecked. */
static void check_cosignatures(const audit_archive *ar, size_t c, const char *note)
{
	const char *p = strstr(note, "\n\n");

	if (p == NULL)
		return; /* the owner's signature check already failed */
	for (p += 2; *p;) {
		const char *eol = strchr(p, '\n'), *sp;
		char name[TERN_NOTE_NAME_MAX + 1];
		const audit_member *m;
		size_t ll = eol ? (size_t)(eol - p) : strlen(p);

		if (ll < strlen(DASH) + 1 || memcmp(p, DASH, strlen(DASH)) != 0 ||
		    (sp = memchr(p + strlen(DASH), ' ', ll - strlen(DASH))) == NULL ||
		    (size_t)(sp - p) - strlen(DASH) > TERN_NOTE_NAME_MAX) {
			report(ar->file, "checkpoint %zu: a malformed signature line", c);
			return;
		}
		snprintf(name, sizeof(name), "%.*s", (int)(sp - p - strlen(DASH)),
		         p + strlen(DASH));
		if (strcmp(name, ar->a->origin) != 0) {
			if ((m = audit_member_by_origin(ar, name)) == NULL)
				report(ar->file, "checkpoint %zu: cosigned by %s, not a member", c,
				       name);
			else if (audit_sig_checked(tern_cosign_verify(note, strlen(note), name,
			                                              m->pub, NULL)) != TERN_OK)
				report(ar->file, "checkpoint %zu: %s's cosignature does not verify",
				       c, m->id);
		}
		if (eol == NULL)
			break;
		p = eol + 1;
	}
}

struct want {
	uint64_t size;
	tern_hash root;
	int what; /* <0: the previous export's checkpoint; else checkpoint index */
	int bad;  /* the entries hash to another root */
};

static int want_cmp(const void *x, const void *y)
{
	const struct want *a = x, *b = y;

	return a->size < b->size ? -1 : a->size > b->size;
}

/* Computes the roots at w's (ascending) sizes and marks those that differ. */
static int check_roots(const audit_archive *ar, struct want *w, size_t nw)
{
	uint64_t *sizes = calloc(nw, sizeof(*sizes));
	tern_hash *roots = malloc(nw * sizeof(*roots));
	int rc = -1;

	if (sizes && roots) {
		for (size_t i = 0; i < nw; i++)
			sizes[i] = w[i].size;
		if ((rc = audit_archive_roots(ar, sizes, nw, roots)) == 0)
			for (size_t i = 0; i < nw; i++)
				w[i].bad = memcmp(roots[i], w[i].root, TERN_HASH_LEN) != 0;
	}
	free(sizes);
	free(roots);
	return rc;
}

/* One archive on its own: signatures, roots, the previous-export proof. */
static void verify_one(const audit_archive *ar)
{
	const Tern__V1__AuditArchive *a = ar->a;
	struct want *w = calloc(a->n_checkpoints + 1, sizeof(*w));
	tern_hash last_root;
	uint64_t last_size = 0;
	size_t nw = 0;
	int have_last = 0;

	if (w == NULL)
		return;
	if (a->n_checkpoints == 0)
		report(ar->file, "no checkpoint: nothing in the archive is signed");
	for (size_t c = 0; c < a->n_checkpoints; c++) {
		char *text = NULL, origin[TERN_NOTE_NAME_MAX + 1];
		const char *note = a->checkpoints[c];
		uint64_t size;
		tern_hash root;

		if (audit_sig_checked(tern_note_verify(note, strlen(note), a->origin,
		                                       ar->owner->pub, &text)) != TERN_OK) {
			report(ar->file, "checkpoint %zu: not signed by %s's key", c, a->log_id);
			continue;
		}
		if (tern_checkpoint_parse(text, origin, &size, root) != TERN_OK ||
		    strcmp(origin, a->origin) != 0) {
			report(ar->file, "checkpoint %zu: malformed, or for another log", c);
			free(text);
			continue;
		}
		free(text);
		check_cosignatures(ar, c, note);
		if (size < last_size) {
			report(ar->file, "checkpoint %zu: size %llu is below the previous %llu", c,
			       (unsigned long long)size, (unsigned long long)last_size);
			continue;
		}
		if (size < a->first_index || size > audit_archive_end(ar)) {
			report(ar->file,
			       "checkpoint %zu covers %llu entries, the archive holds %llu to %llu",
			       c, (unsigned long long)size, (unsigned long long)a->first_index,
			       (unsigned long long)audit_archive_end(ar));
			continue;
		}
		w[nw] = (struct want){size, {0}, (int)c, 0};
		memcpy(w[nw++].root, root, TERN_HASH_LEN);
		last_size = size;
		memcpy(last_root, root, TERN_HASH_LEN);
		have_last = 1;
	}
	if (a->previous_checkpoint[0]) {
		char *text = NULL, origin[TERN_NOTE_NAME_MAX + 1];
		uint64_t m;
		tern_hash r, proof[TERN_MERKLE_MAX_PROOF];
		size_t pl = 0;
		if (audit_sig_checked(tern_note_verify(a->previous_checkpoint,
		                                       strlen(a->previous_checkpoint), a->origin,
		                                       ar->owner->pub, &text)) != TERN_OK ||
		    tern_checkpoint_parse(text, origin, &m, r) != TERN_OK ||
		    strcmp(origin, a->origin) != 0) {
			report(ar->file, "the previous export's checkpoint is not signed by %s",
			       a->log_id);
		} else if (!have_last || a->n_previous_proof > TERN_MERKLE_MAX_PROOF) {
			report(ar->file, "no consistency proof to the previous export");
		} else {
			for (; pl < a->n_previous_proof; pl++) {
				if (a->previous_proof[pl].len != TERN_HASH_LEN)
					break;
				memcpy(proof[pl], a->previous_proof[pl].data, TERN_HASH_LEN);
			}
			if (pl != a->n_previous_proof ||
			    tern_merkle_verify_consistency(m, last_size, r, last_root,
			                                   (const tern_hash *)proof, pl) != TERN_OK)
				report(
				    ar->file,
				    "the log of %llu entries does not extend the previous export's "
				    "%llu: history was rewritten between exports",
				    (unsigned long long)last_size, (unsigned long long)m);
			else if (m >= a->first_index && m <= audit_archive_end(ar)) {
				w[nw] = (struct want){m, {0}, -1, 0};
				memcpy(w[nw++].root, r, TERN_HASH_LEN);
			}
		}
		free(text);
	}
	qsort(w, nw, sizeof(*w), want_cmp);
	if (nw && check_roots(ar, w, nw) != 0)
		report(ar->file, "the prefix frontier does not fit the archive's first index");
	for (size_t i = 0; i < nw; i++) {
		if (!w[i].bad)
			continue;
		if (w[i].what < 0)
			report(
			    ar->file,
			    "the entries do not hash to the previous export's checkpoint of %llu",
			    (unsigned long long)w[i].size);
		else
			report(
			    ar->file,
			    "checkpoint %d (size %llu): the entries do not hash to its root: the "
			    "log was changed after it was signed",
			    w[i].what, (unsigned long long)w[i].size);
	}
	if (audit_archive_end(ar) > last_size)
		report(ar->file,
		       "%llu entries after the last checkpoint are not covered by a signature",
		       (unsigned long long)(audit_archive_end(ar) - last_size));
	free(w);
}

/* The same log, as far as the archives tell: its id under the same CA. */
static int same_log(const audit_archive *a, const audit_archive *b)
{
	return a->a != NULL && a->anchored && strcmp(a->a->log_id, b->a->log_id) == 0 &&
	       strcmp(a->ca_fingerprint, b->ca_fingerprint) == 0;
}

/* The witness's first REANCHORED entry for ev's log after ev that gave ev's
 * checkpoint up, or NULL; in any archive of the witness's log among ars (an
 * auditor may hold it in several exports, the re-anchor in a later one). */
static const audit_evidence *given_up_by(const audit_archive *ars, size_t n,
                                         const audit_archive *wa, const audit_evidence *ev)
{
	const audit_evidence *best = NULL;

	for (size_t a = 0; a < n; a++) {
		if (!same_log(&ars[a], wa))
			continue;
		for (size_t i = 0; i < ars[a].nevidence; i++) {
			const audit_evidence *r = &ars[a].evidence[i];
			if (r->reanchored && r->index > ev->index &&
			    strcmp(r->owner, ev->owner) == 0 && r->abandoned >= ev->size &&
			    (best == NULL || r->index < best->index))
				best = r;
		}
	}
	return best;
}

/* The newest entry of oa's log (in any of its archives among ars) below the
 * checkpoint r re-anchored it at that records its operator's request to
 * re-anchor (OPERATOR reanchor), or -1. A REANCHORED entry is no proof of a
 * restore: the witness takes the owner's word for it, from any owner at any
 * time. Without the request in the log re-anchored, what was given up is
 * history rewritten, and reported as such. */
static int64_t requested(const audit_archive *ars, size_t n, const audit_archive *oa,
                         const audit_evidence *r)
{
	int64_t best = -1;

	for (size_t i = 0; i < n; i++) {
		const audit_archive *a = &ars[i];
		if (!same_log(a, oa))
			continue;
		for (size_t k = 0; k < a->nrequests; k++)
			if (a->requests[k] < r->size && (int64_t)a->requests[k] > best)
				best = (int64_t)a->requests[k];
	}
	return best;
}

/* Each witness's record of another log must match that log's archive: a log
 * rewritten after its peers cosigned contradicts them. One re-anchored (its
 * store put back, its operator's request in its own log) still does, and is
 * reported as what its owner says it is: history given up at a restore,
 * which the witness kept. One re-anchored with no request in its log is
 * reported as rewritten. */
static void cross_check(audit_archive *ars, size_t n)
{
	for (size_t wi = 0; wi < n; wi++) {
		const audit_archive *wa = &ars[wi];
		for (size_t e = 0; e < wa->nevidence; e++) {
			const audit_evidence *ev = &wa->evidence[e], *ra;
			int64_t req;
			for (size_t oi = 0; oi < n; oi++) {
				const audit_archive *oa = &ars[oi];
				struct want w = {ev->size, {0}, 0, 0};
				char when[32];
				time_t t = (time_t)ev->time;
				struct tm tm;
				if (oi == wi || !oa->anchored ||
				    strcmp(oa->a->log_id, ev->owner) != 0 ||
				    strcmp(oa->ca_fingerprint, wa->ca_fingerprint) != 0)
					continue;
				gmtime_r(&t, &tm);
				strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
				if ((ra = given_up_by(ars, n, wa, ev)) != NULL &&
				    (req = requested(ars, n, oa, ra)) >= 0 &&
				    (ev->size > audit_archive_end(oa) ||
				     ev->size >= oa->a->first_index)) {
					memcpy(w.root, ev->root, TERN_HASH_LEN);
					if (ev->size <= audit_archive_end(oa) &&
					    (check_roots(oa, &w, 1) != 0 || !w.bad))
						continue; /* this log holds it after all */
					report(oa->file,
					       "given up at a restore: %s cosigned this "
					       "log's checkpoint of %llu entries at %s "
					       "(%s, entry %llu); this log does not hold "
					       "that history (its store was put back from "
					       "a backup: its operator's request is this "
					       "log's entry %lld), and %s took its "
					       "checkpoint of %llu entries, of the history "
					       "put back, as its new start (its entry %llu)",
					       wa->a->log_id, (unsigned long long)ev->size, when,
					       wa->file, (unsigned long long)ev->index,
					       (long long)req, wa->a->log_id,
					       (unsigned long long)ra->size,
					       (unsigned long long)ra->index);
					continue;
				}
				if (ev->size > audit_archive_end(oa)) {
					report(oa->file,
					       "%s cosigned this log at %llu entries (%s, its "
					       "entry %llu); "
					       "the archive holds only %llu: truncated, or "
					       "exported before",
					       wa->a->log_id, (unsigned long long)ev->size, when,
					       (unsigned long long)ev->index,
					       (unsigned long long)audit_archive_end(oa));
					continue;
				}
				if (ev->size < oa->a->first_index)
					continue; /* before this archive's range: the older one says
					           */
				memcpy(w.root, ev->root, TERN_HASH_LEN);
				if (check_roots(oa, &w, 1) == 0 && w.bad)
					report(
					    oa->file,
					    "rewritten: %s cosigned this log's checkpoint of %llu "
					    "entries at %s (%s, entry %llu); these entries hash to "
					    "another root",
					    wa->a->log_id, (unsigned long long)ev->size, when,
					    wa->file, (unsigned long long)ev->index);
			}
		}
	}
}

void audit_verify_archives(audit_archive *ars, size_t n, audit_finding_fn *fn)
{
	report = fn;
	for (size_t i = 0; i < n; i++)
		if (ars[i].anchored)
			verify_one(&ars[i]);
	cross_check(ars, n);
	report = finding;
}

/* The result, clean or findings, goes to stdout: it is what the command
 * produces. stderr is for not being able to check an archive at all (it
 * cannot be read, or memory ran out), which is exit 3 whatever the others
 * hold, since the verification is then incomplete. */
int audit_verify(int nfiles, char **files)
{
	audit_archive *ars = calloc((size_t)nfiles, sizeof(*ars));
	int *loaded = calloc((size_t)nfiles, sizeof(int));
	unsigned total = 0, unread = 0;

	tallies = calloc((size_t)nfiles, sizeof(*tallies));
	if (ars == NULL || loaded == NULL || tallies == NULL) {
		fprintf(stderr, "tern audit: out of memory\n");
		return CLI_FAIL;
	}
	for (int i = 0; i < nfiles; i++) {
		struct timespec t0, t1;
		tallies[ntallies++] = (struct tally){files[i], 0};
		clock_gettime(CLOCK_MONOTONIC, &t0);
		int lrc = audit_archive_load(files[i], &ars[i], finding, 0);
		loaded[i] = lrc == 0;
		if (lrc == -2) {
			fprintf(stderr, "tern audit verify: %s: cannot read: %s\n", files[i],
			        tern_errdetail());
			unread++;
		}
		if (loaded[i] && ars[i].anchored)
			verify_one(&ars[i]);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		ars[i].seconds =
		    (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	}
	cross_check(ars, (size_t)nfiles);
	for (int i = 0; i < nfiles; i++) {
		unsigned n = tally_of(files[i]);
		total += n;
		if (n == 0 && loaded[i])
			printf(
			    "%s: ok: %s, entries %llu to %llu, %zu checkpoints, %zu cosigned by "
			    "this log (%.0f entries/s); CA SHA-256 %s\n",
			    files[i], ars[i].a->origin, (unsigned long long)ars[i].a->first_index,
			    (unsigned long long)audit_archive_end(&ars[i]), ars[i].a->n_checkpoints,
			    ars[i].nevidence,
			    ars[i].seconds > 0 ? (double)ars[i].a->n_entries / ars[i].seconds : 0.0,
			    ars[i].ca_fingerprint);
		if (loaded[i])
			audit_archive_free(&ars[i]);
	}
	free(ars);
	free(loaded);
	free(tallies);
	tallies = NULL;
	ntallies = 0;
	return unread ? CLI_FAIL : total ? CLI_NO : CLI_OK;
}
