/* The case workflow's rules (tern/workflow.h), read from the table in
 * msgtype.c. Pure: what a party holds comes through the lookup it passes, and
 * nothing here writes anywhere, so the node, the broker and `tern audit
 * replay` judge alike. Texts name message ids and field paths, never a
 * body's values: person ids stay out of logs too. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <tern/error.h>
#include <tern/json.h>
#include <tern/workflow.h>

static const struct {
	const char *name;
	const char *description;
} states[TERN_CASE_STATE_COUNT] = {
    [TERN_CASE_NONE] = {"", "no thread yet"},
    [TERN_CASE_REFERRED] = {"referred", "referred to a State, which has not decided yet"},
    [TERN_CASE_INFO_REQUESTED] = {"info-requested",
                                  "the State asked the referrer for more information"},
    [TERN_CASE_DEFERRED] = {"deferred", "the State put its decision off"},
    [TERN_CASE_ACCEPTED] = {"accepted", "the State accepted the case (or some of its members)"},
    [TERN_CASE_REJECTED] = {"rejected",
                            "the State rejected the case; final for this referral (a new "
                            "referral starts a new thread)"},
    [TERN_CASE_BOOKED] = {"booked", "IOM booked the travel"},
    [TERN_CASE_DEPARTED] = {"departed", "the family left the country of asylum"},
    [TERN_CASE_ARRIVED] = {"arrived", "the family arrived in the receiving State"},
    [TERN_CASE_CANCELLED] = {"cancelled", "the booked travel was cancelled"},
    [TERN_CASE_WITHDRAWN] = {"withdrawn",
                             "the referrer withdrew the submission; final (no decision or "
                             "travel after it)"},
    [TERN_CASE_HANDED_OVER] = {"handed-over",
                               "IOM handed the arrived family over to the State's reception; "
                               "final"},
};

const char *tern_case_state_name(tern_case_state s)
{
	return (int)s >= 0 && s < TERN_CASE_STATE_COUNT ? states[s].name : "";
}

const char *tern_case_state_description(tern_case_state s)
{
	return (int)s >= 0 && s < TERN_CASE_STATE_COUNT ? states[s].description : "";
}

int tern_case_state_parse(const char *name, tern_case_state *out)
{
	*out = TERN_CASE_NONE;
	for (int s = 1; name && s < TERN_CASE_STATE_COUNT; s++)
		if (strcmp(states[s].name, name) == 0) {
			*out = (tern_case_state)s;
			return TERN_OK;
		}
	return TERN_ENOENT;
}

int tern_workflow_recipients_ok(const tern_msgtype *t, size_t n)
{
	return t != NULL && (t->max_recipients == 0 || n <= t->max_recipients);
}

int tern_workflow_recipient_ok(const tern_msgtype *t, unsigned roles)
{
	return t != NULL && (t->recipient_roles == 0 || (roles & t->recipient_roles) != 0);
}

/* --- reading bodies ----------------------------------------------------------- */

static const ProtobufCFieldDescriptor *field(const ProtobufCMessage *m, const char *name,
                                             size_t len)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	for (unsigned i = 0; i < d->n_fields; i++)
		if (strlen(d->fields[i].name) == len && strncmp(d->fields[i].name, name, len) == 0)
			return &d->fields[i];
	return NULL;
}

static const char *string_field(const ProtobufCMessage *m, const char *name)
{
	const ProtobufCFieldDescriptor *f = field(m, name, strlen(name));

	if (f == NULL || f->type != PROTOBUF_C_TYPE_STRING || f->label == PROTOBUF_C_LABEL_REPEATED)
		return "";
	return *(const char *const *)((const char *)m + f->offset);
}

/* The enum field's value and its name; -1 and "" without one. */
static int enum_by_name(const tern_msgtype *t, const char *name, const char **vname)
{
	const ProtobufCFieldDescriptor *f =
	    t->state_field
	        ? protobuf_c_message_descriptor_get_field_by_name(t->desc, t->state_field)
	        : NULL;
	const ProtobufCEnumValue *ev =
	    f && name ? protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, name) : NULL;

	*vname = ev ? ev->name : "";
	return ev ? ev->value : -1;
}

static int enum_field(const ProtobufCMessage *m, const char *name, const char **vname)
{
	const ProtobufCFieldDescriptor *f = name ? field(m, name, strlen(name)) : NULL;
	const ProtobufCEnumValue *ev;
	int value;

	*vname = "";
	if (f == NULL || f->type != PROTOBUF_C_TYPE_ENUM || f->label == PROTOBUF_C_LABEL_REPEATED)
		return -1;
	value = *(const int *)((const char *)m + f->offset);
	ev = protobuf_c_enum_descriptor_get_value(f->descriptor, value);
	*vname = ev ? ev->name : "";
	return value;
}

/* Calls fn for each person id the path names ("travellers",
 * "members.person_id"), with the JSON path of the field for messages. */
static int each_person(const ProtobufCMessage *m, const char *path,
                       int (*fn)(const char *id, const char *where, void *arg), void *arg)
{
	const char *dot = strchr(path, '.');
	const ProtobufCFieldDescriptor *f =
	    field(m, path, dot ? (size_t)(dot - path) : strlen(path));
	size_t n;
	char where[192], a[64], b[64];
	int rc;

	if (f == NULL || f->label != PROTOBUF_C_LABEL_REPEATED)
		return TERN_OK;
	tern_json_name(f->name, a, sizeof(a));
	n = *(const size_t *)((const char *)m + f->quantifier_offset);
	for (size_t i = 0; i < n; i++) {
		const char *id;
		if (dot == NULL && f->type == PROTOBUF_C_TYPE_STRING) {
			id = (*(char *const *const *)((const char *)m + f->offset))[i];
			snprintf(where, sizeof(where), "%s[%zu]", a, i);
		} else if (dot != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE) {
			const ProtobufCMessage *sub =
			    (*(ProtobufCMessage *const *const *)((const char *)m + f->offset))[i];
			id = string_field(sub, dot + 1);
			tern_json_name(dot + 1, b, sizeof(b));
			snprintf(where, sizeof(where), "%s[%zu].%s", a, i, b);
		} else {
			return TERN_OK;
		}
		if ((rc = fn(id, where, arg)) != TERN_OK)
			return rc;
	}
	return TERN_OK;
}

static int add_person(const char *id, const char *where, void *arg)
{
	(void)where;
	return json_array_append_new(arg, json_string(id)) == 0 ? TERN_OK : TERN_ENOMEM;
}

/* Adds id to the persons array unless it is there already. */
static int add_new_person(const char *id, const char *where, void *arg)
{
	size_t i;
	json_t *p;

	(void)where;
	json_array_foreach(arg, i, p) if (json_is_string(p) &&
	                                  strcmp(json_string_value(p), id) == 0) return TERN_OK;
	return add_person(id, where, arg);
}

static int remove_person(const char *id, const char *where, void *arg)
{
	size_t i = 0;

	(void)where;
	while (i < json_array_size(arg)) {
		const char *p = json_string_value(json_array_get(arg, i));
		if (p && strcmp(p, id) == 0)
			json_array_remove(arg, i);
		else
			i++;
	}
	return TERN_OK;
}

struct member_check {
	const json_t *persons;
	char where[192];
};

static int check_member(const char *id, const char *where, void *arg)
{
	struct member_check *c = arg;
	size_t i;
	json_t *p;

	json_array_foreach(c->persons, i,
	                   p) if (json_is_string(p) &&
	                          strcmp(json_string_value(p), id) == 0) return TERN_OK;
	snprintf(c->where, sizeof(c->where), "%s", where);
	return TERN_ENOENT;
}

/* --- judging ------------------------------------------------------------------ */

/* The article before a type name in a text: "an acceptance-decision". */
static const char *a_or_an(const char *name)
{
	return name[0] && strchr("aeiou", name[0]) ? "an" : "a";
}

static const char *rs(const json_t *rec, const char *key)
{
	const char *s = json_string_value(json_object_get(rec, key));
	return s ? s : "";
}

static void deny(tern_wf_verdict *v, tern_reason r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void deny(tern_wf_verdict *v, tern_reason r, const char *fmt, ...)
{
	va_list ap;

	v->reason = r;
	va_start(ap, fmt);
	vsnprintf(v->text, sizeof(v->text), fmt, ap);
	va_end(ap);
}

/* The reason for a reference that is missing or of the wrong type: the
 * older, specific codes where they exist. */
static tern_reason unknown_reason(Tern__V1__MessageType ref_type)
{
	switch (ref_type) {
	case TERN__V1__MESSAGE_TYPE__CASE_REFERRAL:
		return TERN_REASON_UNKNOWN_REFERRAL;
	case TERN__V1__MESSAGE_TYPE__ACCEPTANCE_DECISION:
		return TERN_REASON_UNKNOWN_DECISION;
	default:
		return TERN_REASON_UNKNOWN_REFERENCE;
	}
}

static int party_of(const json_t *rec, const char *node)
{
	size_t i;
	json_t *p;

	if (strcmp(rs(rec, "sender"), node) == 0)
		return 1;
	json_array_foreach(json_object_get(rec, "to"), i,
	                   p) if (json_is_string(p) &&
	                          strcmp(json_string_value(p), node) == 0) return 1;
	return 0;
}

static const tern_wf_transition *find_move(const tern_msgtype *t, int value, tern_case_state from)
{
	for (const tern_wf_transition *x = t->transitions; x && x->to; x++)
		if ((x->value == -1 || x->value == value) && (x->from & TERN_CASE_BIT(from)))
			return x;
	return NULL;
}

/* The thread's next state from its root's record: sets v->root_record.
 * Returns 0 when the move is not allowed (v->reason set). */
static int move_thread(const tern_wf_msg *m, int value, const char *vname, const char *root,
                       const json_t *rootrec, int as_sender, tern_wf_verdict *v)
{
	const tern_msgtype *t = m->type;
	const tern_wf_transition *x;
	tern_case_state from;
	json_t *last;

	if (t->transitions == NULL || rootrec == NULL)
		return 1;
	if (json_is_true(json_object_get(rootrec, "stub")) &&
	    !(as_sender && tern_case_state_parse(rs(rootrec, "state"), &from) == TERN_OK)) {
		/* A thread whose start this party never held (IOM and a referral):
		 * it follows the moves it sees, without judging them; its own
		 * moves it judges by what it traced (a withdrawal, a rejection),
		 * below. */
		for (x = t->transitions; x->to && !(x->value == -1 || x->value == value); x++)
			;
		if (x->to == 0)
			return 1;
	} else if (json_is_true(json_object_get(rootrec, "stub"))) {
		if ((x = find_move(t, value, from)) == NULL) {
			deny(v, TERN_REASON_WRONG_STATE,
			     "a %s%s%s may not follow while referral %s is %s, as this node traced "
			     "it",
			     t->name, vname[0] ? " " : "", vname, root, tern_case_state_name(from));
			return 0;
		}
	} else if (tern_case_state_parse(rs(rootrec, "state"), &from) != TERN_OK) {
		return 1; /* a record from before the workflow: nothing to check against */
	} else if ((x = find_move(t, value, from)) == NULL) {
		deny(v, TERN_REASON_WRONG_STATE, "%s %s%s%s may not follow while referral %s is %s",
		     a_or_an(t->name), t->name, vname[0] ? " " : "", vname, root,
		     tern_case_state_name(from));
		return 0;
	}
	if ((v->root_record = json_deep_copy(rootrec)) == NULL)
		return 0;
	last = json_object_get(v->root_record, "last");
	if (!json_is_object(last)) {
		last = json_object();
		json_object_set_new(v->root_record, "last", last);
	}
	if (x->to != TERN_WF_KEEP)
		json_object_set_new(v->root_record, "state",
		                    json_string(tern_case_state_name((tern_case_state)x->to)));
	json_object_set_new(last, t->name, json_string(m->msgid));
	/* The thread's members as this message changes them (a stub knows none:
	 * it has no "persons" to change). */
	if (m->body && json_is_array(json_object_get(v->root_record, "persons"))) {
		json_t *persons = json_object_get(v->root_record, "persons");
		if (t->members_removed)
			each_person(m->body, t->members_removed, remove_person, persons);
		if (t->members_added)
			each_person(m->body, t->members_added, add_new_person, persons);
	}
	snprintf(v->root, sizeof(v->root), "%s", root);
	return 1;
}

static json_t *own_record(const tern_wf_msg *m, const char *vname, const char *ref)
{
	json_t *to = json_array();

	for (size_t i = 0; to && i < m->nto; i++)
		json_array_append_new(to, json_string(m->to[i]));
	return json_pack("{s:s, s:s, s:s, s:o, s:s, s:s}", "type", m->type->name, "case_id",
	                 m->case_id, "sender", m->sender, "to", to ? to : json_array(), "value",
	                 vname, "ref", ref);
}

int tern_workflow_judge(const tern_wf_msg *m, const char *self, unsigned roles, int as_sender,
                        tern_wf_lookup get, void *arg, tern_wf_verdict *v)
{
	const tern_msgtype *t;
	json_t *ref = NULL, *rootrec = NULL;
	const char *vname, *refid = "", *root;
	int value, rc = TERN_OK;

	if (v == NULL)
		return TERN_EINVAL;
	memset(v, 0, sizeof(*v));
	if (m == NULL || m->type == NULL || m->msgid == NULL || m->sender == NULL ||
	    m->case_id == NULL || self == NULL || get == NULL)
		return TERN_EINVAL;
	t = m->type;
	if (m->body) {
		value = enum_field(m->body, t->state_field, &vname);
		if (t->ref_field)
			refid = string_field(m->body, t->ref_field);
	} else {
		value = enum_by_name(t, m->value, &vname);
		refid = t->ref_field && m->ref ? m->ref : "";
	}
	if ((v->record = own_record(m, vname, refid)) == NULL)
		return TERN_ENOMEM;

	if (t->ref_field == NULL) {
		/* A thread starts here (or the type has none: a receipt). */
		if (t->transitions) {
			json_t *persons = json_array();
			const tern_wf_transition *x = find_move(t, value, TERN_CASE_NONE);
			if (persons == NULL)
				return TERN_ENOMEM;
			if (t->members_field && m->body)
				each_person(m->body, t->members_field, add_person, persons);
			json_object_set_new(v->record, "persons", persons);
			json_object_set_new(v->record, "state",
			                    json_string(tern_case_state_name(
			                        x && x->to != TERN_WF_KEEP ? (tern_case_state)x->to
			                                                   : TERN_CASE_NONE)));
			json_object_set_new(v->record, "last",
			                    json_pack("{s:s}", t->name, m->msgid));
		}
		return TERN_OK;
	}

	rc = get(arg, refid, &ref);
	if (rc == TERN_OK && json_is_true(json_object_get(ref, "stub"))) {
		rootrec = ref; /* only a thread's trace: the message itself is not held */
		ref = NULL;
		rc = TERN_ENOENT;
	}
	if (rc == TERN_ENOENT) {
		const tern_msgtype *rt = tern_msgtype_by_type(t->ref_type);
		rc = TERN_OK;
		if (!as_sender && (roles & t->ref_holders)) {
			v->unknown_ref = 1;
			deny(v, unknown_reason(t->ref_type), "no %s %s is held here", rt->name,
			     refid);
			goto out;
		}
		/* Not a party to the thread's start, but to what follows it: the
		 * thread is traced from here (a stub under the start's id), so that
		 * this party judges what cites the messages it does hold. */
		if (rt->ref_field == NULL && rt->transitions) {
			if (rootrec == NULL) {
				/* The parties of the message that starts the trace: only
				 * they move it after (a State the referral never went to
				 * cannot decide on it here). */
				json_t *parties = json_array();
				json_array_append_new(parties, json_string(m->sender));
				for (size_t i = 0; i < m->nto; i++)
					json_array_append_new(parties, json_string(m->to[i]));
				if ((rootrec = json_pack("{s:b, s:s, s:o}", "stub", 1, "case_id",
				                         m->case_id, "parties", parties)) == NULL) {
					rc = TERN_ENOMEM;
					goto out;
				}
			}
			if (strcmp(rs(rootrec, "case_id"), m->case_id) != 0) {
				deny(v, TERN_REASON_CASE_MISMATCH, "%s %s is for another case",
				     rt->name, refid);
				goto out;
			}
			if (json_is_array(json_object_get(rootrec, "parties"))) {
				size_t i;
				json_t *p;
				int party = 0;
				json_array_foreach(json_object_get(rootrec, "parties"), i, p)
				    party |= json_is_string(p) &&
				             strcmp(json_string_value(p), m->sender) == 0;
				if (!party) {
					deny(v, TERN_REASON_REFERENCE_NOT_SHARED,
					     "%s %s was neither sent to nor by %s, as far as this "
					     "node "
					     "has seen",
					     rt->name, refid, m->sender);
					goto out;
				}
			}
			json_object_set_new(v->record, "root", json_string(refid));
			(void)move_thread(m, value, vname, refid, rootrec, as_sender, v);
		}
		goto out;
	}
	if (rc != TERN_OK)
		goto out;
	if (strcmp(rs(ref, "type"), tern_msgtype_by_type(t->ref_type)->name) != 0) {
		deny(v, unknown_reason(t->ref_type), "%s %s is not %s %s", t->ref_field, refid,
		     a_or_an(tern_msgtype_by_type(t->ref_type)->name),
		     tern_msgtype_by_type(t->ref_type)->name);
		goto out;
	}
	if (strcmp(rs(ref, "case_id"), m->case_id) != 0) {
		deny(v, TERN_REASON_CASE_MISMATCH, "%s %s is for another case",
		     tern_msgtype_by_type(t->ref_type)->name, refid);
		goto out;
	}
	/* Records from before the workflow have no parties: not checked. */
	if (json_object_get(ref, "sender") && !party_of(ref, m->sender)) {
		deny(v, TERN_REASON_REFERENCE_NOT_SHARED, "%s %s was neither sent to nor by %s",
		     tern_msgtype_by_type(t->ref_type)->name, refid, m->sender);
		goto out;
	}
	if (t->ref_value) {
		/* "outcome": the field's name in records from before the workflow */
		const json_t *was = json_object_get(ref, "value") ? json_object_get(ref, "value")
		                                                  : json_object_get(ref, "outcome");
		if (json_is_string(was) && strcmp(json_string_value(was), t->ref_value) != 0) {
			deny(v,
			     t->ref_type == TERN__V1__MESSAGE_TYPE__ACCEPTANCE_DECISION
			         ? TERN_REASON_DECISION_NOT_ACCEPTED
			         : TERN_REASON_WRONG_STATE,
			     "%s %s did not accept the case",
			     t->ref_type == TERN__V1__MESSAGE_TYPE__ACCEPTANCE_DECISION
			         ? "decision"
			         : tern_msgtype_by_type(t->ref_type)->name,
			     refid);
			goto out;
		}
	}
	root = rs(ref, "root")[0] ? rs(ref, "root") : refid;
	json_object_set_new(v->record, "root", json_string(root));
	if (strcmp(root, refid) == 0) {
		rootrec = json_incref(ref);
	} else if ((rc = get(arg, root, &rootrec)) == TERN_ENOENT) {
		rc = TERN_OK; /* the thread's start is not held here: no thread rules */
		goto out;
	} else if (rc != TERN_OK) {
		goto out;
	}
	/* The cited message must still stand: the latest of its kind in its
	 * thread (a decision replaced by a later one no longer does). */
	{
		const char *latest =
		    rs(json_object_get(rootrec, "last"), tern_msgtype_by_type(t->ref_type)->name);
		if (latest[0] && strcmp(latest, refid) != 0) {
			deny(v, TERN_REASON_SUPERSEDED, "%s %s was superseded by %s",
			     tern_msgtype_by_type(t->ref_type)->name, refid, latest);
			goto out;
		}
	}
	if (t->members_field && m->body && json_is_array(json_object_get(rootrec, "persons"))) {
		struct member_check c = {json_object_get(rootrec, "persons"), ""};
		if (each_person(m->body, t->members_field, check_member, &c) == TERN_ENOENT) {
			deny(v, TERN_REASON_UNKNOWN_MEMBER, "%s is not a member of referral %s",
			     c.where, root);
			goto out;
		}
	}
	(void)move_thread(m, value, vname, root, rootrec, as_sender, v);
out:
	json_decref(ref);
	json_decref(rootrec);
	if (v->reason != TERN_REASON_NONE) {
		json_decref(v->root_record);
		v->root_record = NULL;
		v->root[0] = '\0';
	}
	return rc;
}

void tern_wf_verdict_clear(tern_wf_verdict *v)
{
	if (v == NULL)
		return;
	json_decref(v->record);
	json_decref(v->root_record);
	memset(v, 0, sizeof(*v));
}

void tern_workflow_next(tern_case_state s,
                        void (*fn)(const tern_msgtype *t, const char *value, tern_case_state to,
                                   void *arg),
                        void *arg)
{
	for (const tern_msgtype *t = tern_msgtype_all(); t->name; t++) {
		const ProtobufCFieldDescriptor *fd =
		    t->state_field
		        ? protobuf_c_message_descriptor_get_field_by_name(t->desc, t->state_field)
		        : NULL;
		if (t->ref_field == NULL)
			continue; /* starts a thread of its own */
		for (const tern_wf_transition *x = t->transitions; x && x->to; x++) {
			const ProtobufCEnumValue *ev =
			    fd && x->value >= 0
			        ? protobuf_c_enum_descriptor_get_value(fd->descriptor, x->value)
			        : NULL;
			if (x->from & TERN_CASE_BIT(s))
				fn(t, ev ? ev->name : "",
				   x->to == TERN_WF_KEEP ? s : (tern_case_state)x->to, arg);
		}
	}
}

/* --- docs --------------------------------------------------------------------- */

static void roles_or_any(unsigned bits, char *buf, size_t len)
{
	tern_roles_format(bits, buf, len);
	if (bits == 0)
		snprintf(buf, len, "any member");
}

/* "added_members.person_id" as "addedMembers[].personId". */
static void field_path(const char *path, char *buf, size_t len)
{
	const char *dot = strchr(path, '.');
	char head[64], a[64], b[64] = "";
	int n;

	snprintf(head, sizeof(head), "%.*s", dot ? (int)(dot - path) : (int)strlen(path), path);
	tern_json_name(head, a, sizeof(a));
	if (dot)
		tern_json_name(dot + 1, b, sizeof(b));
	n = snprintf(buf, len, "%s[]%s%s", a, dot ? "." : "", b);
	if (n < 0 || (size_t)n >= len)
		buf[0] = '\0';
}

int tern_workflow_describe_types(FILE *f)
{
	char a[64], b[64];

	fputs("| type | message | sent by | to | what it does |\n|---|---|---|---|---|\n", f);
	for (const tern_msgtype *t = tern_msgtype_all(); t->name; t++) {
		roles_or_any(t->sender_roles, a, sizeof(a));
		roles_or_any(t->recipient_roles, b, sizeof(b));
		fprintf(f, "| `%s` | `%s` | %s | %s%s | %s |\n", t->name, t->desc->short_name, a, b,
		        t->max_recipients == 1 ? " (one)" : "", t->purpose ? t->purpose : "");
	}
	return ferror(f) ? TERN_EIO : TERN_OK;
}

int tern_workflow_describe(FILE *f)
{
	char a[160], b[64];

	fputs("| type | sent by | received by | cites | names only members of the referral |\n"
	      "|---|---|---|---|---|\n",
	      f);
	for (const tern_msgtype *t = tern_msgtype_all(); t->name; t++) {
		roles_or_any(t->sender_roles, a, sizeof(a));
		roles_or_any(t->recipient_roles, b, sizeof(b));
		fprintf(f, "| `%s` | %s | %s", t->name, a, b);
		if (t->max_recipients == 1)
			fputs(" (one)", f);
		else if (t->max_recipients)
			fprintf(f, " (at most %u)", t->max_recipients);
		fputs(" | ", f);
		if (t->ref_field) {
			char jn[64];
			tern_json_name(t->ref_field, jn, sizeof(jn));
			tern_roles_format(t->ref_holders, a, sizeof(a));
			fprintf(
			    f,
			    "`%s`: the id of %s `%s`%s%s, of the same case, that the sender sent "
			    "or received, still the latest of its type in the thread; judged by "
			    "recipients with role %s",
			    jn,
			    strchr("aeiou", tern_msgtype_by_type(t->ref_type)->name[0]) ? "an"
			                                                                : "a",
			    tern_msgtype_by_type(t->ref_type)->name,
			    t->ref_value ? " whose value is " : "",
			    t->ref_value ? t->ref_value : "", a);
		} else {
			fputs("nothing", f);
		}
		fputs(" | ", f);
		if (t->members_field) {
			field_path(t->members_field, a, sizeof(a));
			fprintf(f, "%s`%s`", t->ref_field ? "" : "defines them: ", a);
		} else
			fputs("—", f);
		if (t->members_added) {
			field_path(t->members_added, a, sizeof(a));
			fprintf(f, "; adds `%s` to them", a);
		}
		if (t->members_removed) {
			field_path(t->members_removed, a, sizeof(a));
			fprintf(f, "; removes `%s` from them (named no more after it)", a);
		}
		fputs(" |\n", f);
	}
	fputs("\n| type | value | allowed while the thread is | moves it to |\n"
	      "|---|---|---|---|\n",
	      f);
	for (const tern_msgtype *t = tern_msgtype_all(); t->name; t++) {
		for (const tern_wf_transition *x = t->transitions; x && x->to; x++) {
			const ProtobufCFieldDescriptor *fd =
			    t->state_field ? protobuf_c_message_descriptor_get_field_by_name(
			                         t->desc, t->state_field)
			                   : NULL;
			const ProtobufCEnumValue *ev =
			    fd && x->value >= 0
			        ? protobuf_c_enum_descriptor_get_value(fd->descriptor, x->value)
			        : NULL;
			int first = 1;
			fprintf(f, "| `%s` | %s | ", t->name, ev ? ev->name : "any");
			for (int s = 0; s < TERN_CASE_STATE_COUNT; s++)
				if (x->from & TERN_CASE_BIT(s)) {
					fprintf(f, "%s%s", first ? "" : ", ",
					        s == TERN_CASE_NONE ? "(new)"
					                            : tern_case_state_name(s));
					first = 0;
				}
			fprintf(f, " | %s |\n",
			        x->to == TERN_WF_KEEP
			            ? "(stays where it is)"
			            : tern_case_state_name((tern_case_state)x->to));
		}
	}
	fputs("\n| state | meaning |\n|---|---|\n", f);
	for (int s = 1; s < TERN_CASE_STATE_COUNT; s++)
		fprintf(f, "| `%s` | %s |\n", tern_case_state_name((tern_case_state)s),
		        tern_case_state_description((tern_case_state)s));
	return ferror(f) ? TERN_EIO : TERN_OK;
}
