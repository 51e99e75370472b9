/* Example bodies: one valid JSON body per business message type, for
 * `tern example`, documentation and tests.
 *
 * The people, offices and phone numbers are fictional. Dates are fixed (not
 * relative to today) and chosen so that every example passes tern_validate()
 * until at least 2032-12-31 (the decision's validUntil), see docs/messages.md.
 */
#ifndef TERN_EXAMPLES_H
#define TERN_EXAMPLES_H

#ifdef __cplusplus
extern "C" {
#endif

/* The example for a message type name ("case-referral",
 * "acceptance-decision", "travel-confirmation", "receipt") as JSON text in
 * the form tern_json_dump_text() writes. *out is malloc'd; the caller frees
 * it. TERN_ENOENT for an unknown type name. */
int tern_example_json(const char *type_name, char **out);

#ifdef __cplusplus
}
#endif
#endif
