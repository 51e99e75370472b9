/* The case workflow's rules (tern/workflow.h), read from the table in
 * msgtype.c. Pure: what a party holds comes through the lookup it passes, and
 * nothing here writes anywhere, so the node, the broker and `tern audit
 * replay` judge alike. Texts name message ids and field paths, never a
 * body's values: person ids stay out of logs too. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/error.h>
#include <tern/json.h>
#include <tern/workflow.h>

#include "util.h"
#include "workflow_int.h"

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

/* --- members ------------------------------------------------------------------ */

static int add_person(const char *id, const char *where, void *arg)
{
	(void)where;
	return wf_strs_add(*(struct wf_strs *)arg, id);
}

/* Adds id to the persons unless it is there already. */
static int add_new_person(const char *id, const char *where, void *arg)
{
	(void)where;
	return wf_strs_has(*(struct wf_strs *)arg, id) ? TERN_OK : add_person(id, where, arg);
}

static int remove_person(const char *id, const char *where, void *arg)
{
	struct wf_strs *a = arg;
	size_t i = 0;

	(void)where;
	while (i < *a->n) {
		if (strcmp((*a->v)[i], id) == 0) {
			free((*a->v)[i]);
			memmove(&(*a->v)[i], &(*a->v)[i + 1], (*a->n - i - 1) * sizeof(char *));
			(*a->n)--;
		} else {
			i++;
		}
	}
	return TERN_OK;
}

struct member_check {
	const tern_wf_record *root;
	char where[192];
};

static int check_member(const char *id, const char *where, void *arg)
{
	struct member_check *c = arg;

	for (size_t i = 0; i < c->root->n_persons; i++)
		if (strcmp(c->root->persons[i], id) == 0)
			return TERN_OK;
	snprintf(c->where, sizeof(c->where), "%s", where);
	return TERN_ENOENT;
}

/* --- judging ------------------------------------------------------------------ */

/* The article before a type name in a text: "an acceptance-decision". */
static const char *a_or_an(const char *name)
{
	return name[0] && strchr("aeiou", name[0]) ? "an" : "a";
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

static int party_of(const tern_wf_record *rec, const char *node)
{
	if (strcmp(rec->sender, node) == 0)
		return 1;
	for (size_t i = 0; i < rec->n_to; i++)
		if (strcmp(rec->to[i], node) == 0)
			return 1;
	return 0;
}

/* The state a record holds, TERN_ENOENT for none (a record from before the
 * workflow, a stub no move has reached). */
static int state_of(const tern_wf_record *rec, tern_case_state *out)
{
	int s = (int)rec->state;

	*out = (tern_case_state)s;
	return s > TERN_CASE_NONE && s < TERN_CASE_STATE_COUNT ? TERN_OK : TERN_ENOENT;
}

static const tern_wf_transition *find_move(const tern_msgtype *t, int value, tern_case_state from)
{
	for (const tern_wf_transition *x = t->transitions; x && x->to; x++)
		if ((x->value == -1 || x->value == value) && (x->from & TERN_CASE_BIT(from)))
			return x;
	return NULL;
}

/* The thread's next state from its root's record *rootrec, which becomes
 * v->root_record when the move is allowed (taken: *rootrec NULL then). A
 * move not allowed sets v->reason. TERN_ENOMEM, else TERN_OK. */
static int move_thread(const tern_wf_msg *m, int value, const char *vname, const char *root,
                       tern_wf_record **rootrec, int as_sender, tern_wf_verdict *v)
{
	const tern_msgtype *t = m->type;
	const tern_wf_transition *x;
	tern_wf_record *r = *rootrec;
	tern_case_state from;
	int rc;

	if (t->transitions == NULL || r == NULL)
		return TERN_OK;
	if (r->stub && !(as_sender && state_of(r, &from) == TERN_OK)) {
		/* A thread whose start this party never held (IOM and a referral):
		 * it follows the moves it sees, without judging them; its own
		 * moves it judges by what it traced (a withdrawal, a rejection),
		 * below. */
		for (x = t->transitions; x->to && !(x->value == -1 || x->value == value); x++)
			;
		if (x->to == 0)
			return TERN_OK;
		/* Except out of a final state it traced (a withdrawal, a
		 * rejection, its own handover): the referrer refuses such a
		 * move (wrong-state), and followed, the trace would say
		 * "accepted" for a withdrawn case, depending only on which
		 * stream came first. */
		if (state_of(r, &from) == TERN_OK &&
		    (from == TERN_CASE_WITHDRAWN || from == TERN_CASE_REJECTED ||
		     from == TERN_CASE_HANDED_OVER) &&
		    find_move(t, value, from) == NULL) {
			deny(v, TERN_REASON_WRONG_STATE,
			     "a %s%s%s may not follow while referral %s is %s, as this node traced "
			     "it",
			     t->name, vname[0] ? " " : "", vname, root, tern_case_state_name(from));
			return TERN_OK;
		}
	} else if (r->stub) {
		if ((x = find_move(t, value, from)) == NULL) {
			deny(v, TERN_REASON_WRONG_STATE,
			     "a %s%s%s may not follow while referral %s is %s, as this node traced "
			     "it",
			     t->name, vname[0] ? " " : "", vname, root, tern_case_state_name(from));
			return TERN_OK;
		}
	} else if (state_of(r, &from) != TERN_OK) {
		return TERN_OK; /* a record from before the workflow: nothing to check against */
	} else if ((x = find_move(t, value, from)) == NULL) {
		deny(v, TERN_REASON_WRONG_STATE, "%s %s%s%s may not follow while referral %s is %s",
		     a_or_an(t->name), t->name, vname[0] ? " " : "", vname, root,
		     tern_case_state_name(from));
		return TERN_OK;
	}
	/* root may be the record's own: copied before the record is given away. */
	snprintf(v->root, sizeof(v->root), "%s", root);
	v->root_record = r;
	*rootrec = NULL;
	if (x->to != TERN_WF_KEEP)
		r->state = (Tern__V1__CaseState)x->to;
	if ((rc = wf_set_last(r, t->name, m->msgid)) != TERN_OK)
		return rc;
	/* The thread's members as this message changes them (a stub knows none:
	 * it has no persons to change). */
	if (m->body && r->has_persons) {
		struct wf_strs persons = {&r->persons, &r->n_persons};
		if (t->members_removed)
			each_person(m->body, t->members_removed, remove_person, &persons);
		if (t->members_added && (rc = each_person(m->body, t->members_added, add_new_person,
		                                          &persons)) != TERN_OK)
			return rc;
	}
	return TERN_OK;
}

static tern_wf_record *own_record(const tern_wf_msg *m, const char *vname, const char *ref)
{
	tern_wf_record r = TERN__V1__WORKFLOW_RECORD__INIT;

	/* Built over the message's strings, then copied: the verdict outlives
	 * the message. */
	r.type = (char *)m->type->name;
	r.case_id = (char *)m->case_id;
	r.sender = (char *)m->sender;
	r.to = (char **)m->to;
	r.n_to = m->nto;
	r.value = (char *)vname;
	r.has_value = 1;
	r.ref = (char *)ref;
	return tern_wf_record_copy(&r);
}

int tern_workflow_judge(const tern_wf_msg *m, const char *self, unsigned roles, int as_sender,
                        tern_wf_lookup get, void *arg, tern_wf_verdict *v)
{
	const tern_msgtype *t;
	tern_wf_record *ref = NULL, *rootrec = NULL;
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
		return tern_fail(TERN_ENOMEM, "out of memory while judging %s", m->msgid);

	if (t->ref_field == NULL) {
		/* A thread starts here (or the type has none: a receipt). */
		if (t->transitions) {
			const tern_wf_transition *x = find_move(t, value, TERN_CASE_NONE);
			struct wf_strs persons = {&v->record->persons, &v->record->n_persons};
			v->record->has_persons = 1;
			if (t->members_field && m->body &&
			    (rc = each_person(m->body, t->members_field, add_person, &persons)) !=
			        TERN_OK)
				goto out;
			v->record->state = x && x->to != TERN_WF_KEEP
			                       ? (Tern__V1__CaseState)x->to
			                       : TERN__V1__CASE_STATE__CASE_STATE_NONE;
			rc = wf_set_last(v->record, t->name, m->msgid);
		}
		goto out;
	}

	rc = get(arg, refid, &ref);
	if (rc == TERN_OK && ref->stub) {
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
				tern_wf_record r = TERN__V1__WORKFLOW_RECORD__INIT;
				const char **parties = malloc((1 + m->nto) * sizeof(*parties));
				if (parties == NULL) {
					rc = TERN_ENOMEM;
					goto out;
				}
				parties[0] = m->sender;
				for (size_t i = 0; i < m->nto; i++)
					parties[1 + i] = m->to[i];
				r.stub = 1;
				r.case_id = (char *)m->case_id;
				r.parties = (char **)parties;
				r.n_parties = 1 + m->nto;
				/* From the referrer to this node alone: the State is
				 * not named yet (its decision, coming next, names it). */
				r.parties_open = t->sender_roles == TERN_ROLE_REFERRER;
				for (size_t i = 0; i < m->nto && r.parties_open; i++)
					r.parties_open = strcmp(m->to[i], self) == 0;
				rootrec = tern_wf_record_copy(&r);
				free(parties);
				if (rootrec == NULL) {
					rc = TERN_ENOMEM;
					goto out;
				}
			}
			if (strcmp(rootrec->case_id, m->case_id) != 0) {
				deny(v, TERN_REASON_CASE_MISMATCH, "%s %s is for another case",
				     rt->name, refid);
				goto out;
			}
			if (rootrec->n_parties) {
				int party = 0;
				for (size_t i = 0; i < rootrec->n_parties; i++)
					party |= strcmp(rootrec->parties[i], m->sender) == 0;
				if (!party && rootrec->parties_open && !as_sender &&
				    t->sender_roles == TERN_ROLE_STATE) {
					/* The first member outside the parties a referrer's
					 * message to this node alone left open: the State
					 * (the broker lets only a State send a decision;
					 * a referrer's message claims nothing). Kept with
					 * the trace if the move is. */
					struct wf_strs ps = {&rootrec->parties,
					                     &rootrec->n_parties};
					if ((rc = wf_strs_add(ps, m->sender)) != TERN_OK)
						goto out;
					rootrec->parties_open = 0;
					party = 1;
				}
				if (!party) {
					deny(v, TERN_REASON_REFERENCE_NOT_SHARED,
					     "%s %s was neither sent to nor by %s, as far as this "
					     "node "
					     "has seen",
					     rt->name, refid, m->sender);
					goto out;
				}
			}
			if ((rc = wf_set_str(&v->record->root, refid)) == TERN_OK)
				rc = move_thread(m, value, vname, refid, &rootrec, as_sender, v);
		}
		goto out;
	}
	if (rc != TERN_OK)
		goto out;
	if (strcmp(ref->type, tern_msgtype_by_type(t->ref_type)->name) != 0) {
		deny(v, unknown_reason(t->ref_type), "%s %s is not %s %s", t->ref_field, refid,
		     a_or_an(tern_msgtype_by_type(t->ref_type)->name),
		     tern_msgtype_by_type(t->ref_type)->name);
		goto out;
	}
	if (strcmp(ref->case_id, m->case_id) != 0) {
		deny(v, TERN_REASON_CASE_MISMATCH, "%s %s is for another case",
		     tern_msgtype_by_type(t->ref_type)->name, refid);
		goto out;
	}
	/* Records from before the workflow have no parties: not checked. */
	if (ref->sender[0] && !party_of(ref, m->sender)) {
		deny(v, TERN_REASON_REFERENCE_NOT_SHARED, "%s %s was neither sent to nor by %s",
		     tern_msgtype_by_type(t->ref_type)->name, refid, m->sender);
		goto out;
	}
	if (t->ref_value) {
		/* outcome: the field's name in records from before the workflow */
		const char *was = ref->has_value ? ref->value : ref->outcome;
		if (strcmp(was, t->ref_value) != 0) {
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
	root = ref->root[0] ? ref->root : refid;
	if ((rc = wf_set_str(&v->record->root, root)) != TERN_OK)
		goto out;
	if (strcmp(root, refid) == 0) {
		rootrec = ref; /* the record is the root's: judged and moved as one */
		ref = NULL;
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
		    tern_wf_record_last(rootrec, tern_msgtype_by_type(t->ref_type)->name);
		if (latest[0] && strcmp(latest, refid) != 0) {
			deny(v, TERN_REASON_SUPERSEDED, "%s %s was superseded by %s",
			     tern_msgtype_by_type(t->ref_type)->name, refid, latest);
			goto out;
		}
	}
	if (t->members_field && m->body && rootrec->has_persons) {
		struct member_check c = {rootrec, ""};
		if (each_person(m->body, t->members_field, check_member, &c) == TERN_ENOENT) {
			deny(v, TERN_REASON_UNKNOWN_MEMBER, "%s is not a member of referral %s",
			     c.where, root);
			goto out;
		}
	}
	rc = move_thread(m, value, vname, root, &rootrec, as_sender, v);
out:
	tern_wf_record_free(&ref);
	tern_wf_record_free(&rootrec);
	if (v->reason != TERN_REASON_NONE || rc != TERN_OK) {
		tern_wf_record_free(&v->root_record);
		v->root[0] = '\0';
	}
	if (rc != TERN_OK)
		tern_wf_record_free(&v->record);
	/* The allocations on the way set no detail of their own: a caller
	 * that says why must not show an older error's. */
	if (rc == TERN_ENOMEM)
		return tern_fail(TERN_ENOMEM, "out of memory while judging %s", m->msgid);
	return rc;
}

void tern_wf_verdict_clear(tern_wf_verdict *v)
{
	if (v == NULL)
		return;
	tern_wf_record_free(&v->record);
	tern_wf_record_free(&v->root_record);
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
