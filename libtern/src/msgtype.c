#include <stdio.h>
#include <string.h>

#include <tern/error.h>
#include <tern/msgtype.h>
#include <tern/v1/messages.pb-c.h>

static const tern_msgtype types[] = {
	{TERN__V1__MESSAGE_TYPE__CASE_REFERRAL, "case-referral", &tern__v1__case_referral__descriptor,
	 TERN_ROLE_REFERRER},
	{TERN__V1__MESSAGE_TYPE__ACCEPTANCE_DECISION, "acceptance-decision",
	 &tern__v1__acceptance_decision__descriptor, TERN_ROLE_STATE},
	{TERN__V1__MESSAGE_TYPE__TRAVEL_CONFIRMATION, "travel-confirmation",
	 &tern__v1__travel_confirmation__descriptor, TERN_ROLE_MOVEMENT},
	/* Any member acknowledges what it received. */
	{TERN__V1__MESSAGE_TYPE__RECEIPT, "receipt", &tern__v1__receipt__descriptor, 0},
	{TERN__V1__MESSAGE_TYPE__MESSAGE_TYPE_UNSPECIFIED, NULL, NULL, 0},
};

const tern_msgtype *tern_msgtype_all(void)
{
	return types;
}

const tern_msgtype *tern_msgtype_by_name(const char *name)
{
	for (const tern_msgtype *t = types; t->name; t++)
		if (strcmp(t->name, name) == 0)
			return t;
	return NULL;
}

const tern_msgtype *tern_msgtype_by_type(Tern__V1__MessageType type)
{
	for (const tern_msgtype *t = types; t->name; t++)
		if (t->type == type)
			return t;
	return NULL;
}

static const char *const role_names[] = {
	[TERN__V1__ROLE__REFERRER] = "referrer",
	[TERN__V1__ROLE__STATE] = "state",
	[TERN__V1__ROLE__MOVEMENT] = "movement",
	[TERN__V1__ROLE__BROKER] = "broker",
};
#define NROLES (sizeof(role_names) / sizeof(role_names[0]))

int tern_role_parse(const char *name, unsigned *bit)
{
	for (size_t i = 1; i < NROLES; i++) {
		if (strcmp(role_names[i], name) == 0) {
			*bit = 1u << i;
			return TERN_OK;
		}
	}
	return TERN_EINVAL;
}

int tern_roles_parse(const char *list, unsigned *bits)
{
	char buf[128], *save = NULL;
	unsigned acc = 0, b;

	if (strlen(list) >= sizeof(buf))
		return TERN_EINVAL;
	strcpy(buf, list);
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (tern_role_parse(tok, &b) != TERN_OK)
			return TERN_EINVAL;
		acc |= b;
	}
	if (acc == 0)
		return TERN_EINVAL;
	*bits = acc;
	return TERN_OK;
}

void tern_roles_format(unsigned bits, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 1; i < NROLES; i++) {
		if (!(bits & (1u << i)))
			continue;
		int n = snprintf(buf + off, len - off, "%s%s", off ? "," : "", role_names[i]);
		if (n < 0 || (size_t)n >= len - off)
			break;
		off += (size_t)n;
	}
}
