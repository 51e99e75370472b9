#include <stdarg.h>
#include <stdio.h>

#include <tern/error.h>

#include "util.h"

static const struct {
	const char *name;
	const char *text;
} errs[TERN_ERR_COUNT] = {
    [TERN_OK] = {"ok", "success"},
    [TERN_EINVAL] = {"invalid-argument", "invalid argument"},
    [TERN_ENOMEM] = {"no-memory", "out of memory"},
    [TERN_EIO] = {"io", "input/output error"},
    [TERN_ENOENT] = {"not-found", "not found"},
    [TERN_EEXIST] = {"exists", "already exists"},
    [TERN_EPERM] = {"key-permissions", "a private file, or a file or directory Tern trusts, is "
                                       "open to other users (see the detail)"},
    [TERN_ECONFIG] = {"config", "configuration error"},
    [TERN_EMALFORMED] = {"malformed", "malformed input"},
    [TERN_ETOOBIG] = {"too-large", "input too large"},
    [TERN_EVERSION] = {"unsupported-version", "unsupported schema version"},
    [TERN_EBADSIG] = {"bad-signature", "signature does not verify"},
    [TERN_EUNKNOWN] = {"unknown-sender", "sender is not in the federation directory"},
    [TERN_EREVOKED] = {"revoked-sender", "sender's certificate is revoked"},
    [TERN_ENOTRCPT] = {"not-a-recipient", "this node is not a recipient"},
    [TERN_EDIGEST] = {"digest-mismatch", "body digest does not match the header"},
    [TERN_ESKEW] = {"clock-skew", "created-at is outside the allowed clock skew"},
    [TERN_EDECRYPT] = {"cannot-open", "sealed body does not authenticate"},
    [TERN_ECRYPTO] = {"crypto", "cryptographic library failure"},
    [TERN_ECERT] = {"bad-certificate", "certificate or CRL does not verify"},
    [TERN_EEXPIRED] = {"expired", "certificate, CRL or directory expired"},
    [TERN_EOLDER] = {"directory-downgrade", "directory is older than the one already held"},
    [TERN_EINVALID] = {"invalid-body", "message body breaks validation rules"},
    [TERN_EROLE] = {"wrong-role", "sender's role may not send this message type"},
};

const char *tern_strerror(int code)
{
	if (code < 0 || code >= TERN_ERR_COUNT || errs[code].text == NULL)
		return "unknown error";
	return errs[code].text;
}

const char *tern_errcode_name(int code)
{
	if (code < 0 || code >= TERN_ERR_COUNT || errs[code].name == NULL)
		return "unknown";
	return errs[code].name;
}

static _Thread_local char detail[512];

const char *tern_errdetail(void)
{
	return detail;
}

void tern_errdetail_clear(void)
{
	detail[0] = '\0';
}

int tern_fail(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	return code;
}
