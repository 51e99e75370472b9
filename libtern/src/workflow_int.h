/* What workflow.c and workflow_record.c share, internal to libtern (hidden):
 * the changes the judge makes to a record it owns (one unpacked, or made by
 * tern_wf_record_copy: every string and array its own, freed by
 * tern_wf_record_free). */
#ifndef TERN_WORKFLOW_INT_H
#define TERN_WORKFLOW_INT_H

#include <stddef.h>

#include <tern/workflow.h>

#define WF_HIDDEN __attribute__((visibility("hidden")))

/* A repeated string field of a record: appended to one at a time, as few
 * as a message names. */
struct wf_strs {
	char ***v;
	size_t *n;
};

/* Replaces the string *field of a record with a copy of v. */
WF_HIDDEN int wf_set_str(char **field, const char *v);
/* Appends a copy of s; 1 from wf_strs_has when s is there already. */
WF_HIDDEN int wf_strs_add(struct wf_strs a, const char *s);
WF_HIDDEN int wf_strs_has(struct wf_strs a, const char *s);
/* The record's last message of type is msgid. */
WF_HIDDEN int wf_set_last(tern_wf_record *r, const char *type, const char *msgid);

#endif
