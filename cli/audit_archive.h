/* Audit archives as the offline tools see them (tern audit verify, replay):
 * loaded, decoded, their trust anchors checked, every entry hashed. Nothing
 * here touches a store or the network, and nothing reads the clock. */
#ifndef TERN_CLI_AUDIT_ARCHIVE_H
#define TERN_CLI_AUDIT_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

#include <tern/merkle.h>
#include <tern/note.h>
#include <tern/v1/audit.pb-c.h>

#define AUDIT_ARCHIVE_MAX (1024u * 1024 * 1024)
#define AUDIT_ENTRY_MAX 65536

/* A directory member, as far as an archive's checks need one. */
typedef struct audit_member {
	char id[64];
	char origin[TERN_NOTE_NAME_MAX + 1]; /* the name its notes are signed under */
	uint8_t pub[32];                     /* Ed25519 */
	unsigned roles;                      /* TERN_ROLE_* */
} audit_member;

/* A COSIGNED entry of one log: evidence of what another log's owner signed. */
typedef struct audit_evidence {
	uint64_t index; /* in the witness's log */
	char owner[64]; /* whose checkpoint */
	uint64_t size;
	tern_hash root;
	uint64_t time; /* the cosignature's, seconds */
	/* A REANCHORED entry: the witness took this checkpoint as the log's new
	 * start, giving up what it had cosigned up to abandoned entries. */
	int reanchored;
	uint64_t abandoned;
} audit_evidence;

typedef struct audit_archive {
	const char *file;
	uint8_t *buf;
	Tern__V1__AuditArchive *a; /* decoded; points into nothing else */
	audit_member *members;
	size_t nmembers;
	const audit_member *owner;
	char ca_fingerprint[65];        /* SHA-256 of the CA certificate, hex */
	tern_hash *leaves;              /* of entries[i], log index first_index + i */
	Tern__V1__AuditEntry **entries; /* decoded (when kept); NULL where one does not decode */
	audit_evidence *evidence;
	size_t nevidence;
	/* The log indices of its OPERATOR "reanchor" entries, ascending: its
	 * operator asked its witnesses to re-anchor it (tern audit reanchor). */
	uint64_t *requests;
	size_t nrequests;
	int anchored;   /* CA, CRL, directory and owner certificate check out */
	double seconds; /* spent checking it, for the rate shown */
} audit_archive;

/* Reports one finding about file; the verify and replay commands count them. */
typedef void audit_finding_fn(const char *file, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Reads and decodes file and checks its anchors, reporting what is wrong
 * through finding. Every entry is decoded to check it; keep_entries keeps
 * them decoded in entries (replay), otherwise entries stays NULL (verify,
 * which then needs a fraction of the memory). 0 when the archive could be
 * read at all (its anchors may still have failed: see anchored); -1 when it
 * is not an archive, reported through finding; -2 when it could not be read
 * or held in memory, reported through nothing (tern_errdetail() says why).
 * After -1 or -2 nothing is left to free. */
int audit_archive_load(const char *file, audit_archive *ar, audit_finding_fn *finding,
                       int keep_entries);
void audit_archive_free(audit_archive *ar);

/* rc of a signature check (tern_note_verify, tern_cosign_verify), except
 * that a check memory ran out for does not return: a signature not checked
 * is no finding against the log, and a verification that cannot check one
 * is incomplete, so the command says so on stderr and exits 3, as for an
 * archive it cannot read. */
int audit_sig_checked(int rc);

const audit_member *audit_member_find(const audit_archive *ar, const char *id);
const audit_member *audit_member_by_origin(const audit_archive *ar, const char *origin);

/* The Merkle roots of the log's first sizes[i] entries, from the archive's
 * prefix frontier and entries, in one pass. sizes ascend, each within
 * [first_index, first_index + n_entries]; -1 otherwise. */
int audit_archive_roots(const audit_archive *ar, const uint64_t *sizes, size_t k, tern_hash *roots);

/* Entry i of the archive's log order (log index first_index + i). */
static inline uint64_t audit_archive_end(const audit_archive *ar)
{
	return ar->a->first_index + ar->a->n_entries;
}

#endif
