/* Tern error codes.
 *
 * Every libtern call returns an int: 0 (TERN_OK) on success, one of the codes
 * below on failure, results in out-parameters. A peer's bad bytes, a failed
 * decode and a failed signature are ordinary error returns, never aborts.
 *
 * tern_errdetail() gives a human sentence about the last failure in the
 * calling thread (which file, which field); it is valid until the next libtern
 * call in that thread and never contains message bodies or key material.
 */
#ifndef TERN_ERROR_H
#define TERN_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

enum tern_err {
	TERN_OK = 0,
	TERN_EINVAL,     /* invalid argument (a programming or usage error) */
	TERN_ENOMEM,     /* out of memory (over a decoding budget is EMALFORMED) */
	TERN_EIO,        /* a file or system call failed; see tern_errdetail() */
	TERN_ENOENT,     /* no such item */
	TERN_EEXIST,     /* already exists */
	TERN_EPERM,      /* a private file open to others, or a trusted path others may write */
	TERN_ECONFIG,    /* configuration error */
	TERN_EMALFORMED, /* bytes do not decode as the expected structure */
	TERN_ETOOBIG,    /* input over its size limit */
	TERN_EVERSION,   /* unsupported schema version */
	TERN_EBADSIG,    /* signature does not verify */
	TERN_EUNKNOWN,   /* sender not in the federation directory */
	TERN_EREVOKED,   /* sender's certificate revoked */
	TERN_ENOTRCPT,   /* this node is not a recipient */
	TERN_EDIGEST,    /* body digest does not match the header */
	TERN_ESKEW,      /* created-at outside the allowed clock skew */
	TERN_EDECRYPT,   /* sealed body or key wrap does not authenticate */
	TERN_ECRYPTO,    /* the crypto library failed (not the input) */
	TERN_ECERT,      /* certificate or CRL does not verify */
	TERN_EEXPIRED,   /* certificate, CRL or directory expired */
	TERN_EOLDER,     /* directory older than the one already held */
	TERN_EINVALID,   /* business message breaks validation rules */
	TERN_EROLE,      /* sender's role may not send this message type */
	TERN_ERR_COUNT
};

/* A short English description of code; never NULL. */
const char *tern_strerror(int code);

/* A stable lower-case token for code ("bad-signature"), for JSON and receipts. */
const char *tern_errcode_name(int code);

/* Detail about the last failure in this thread, or "" if none was recorded. */
const char *tern_errdetail(void);

#ifdef __cplusplus
}
#endif
#endif
