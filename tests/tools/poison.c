/* A test tool, never installed: preloaded into a tern-node
 * (LD_PRELOAD=libtern-poison.so), it makes the node die as it checks the body
 * of a message whose case id is $TERN_POISON_CASE, every time it is started:
 * a node with a bug that one message triggers, the way a parser's would.
 * tests/integration/test_poison_node.sh drives it. It stands in front of
 * libtern's tern_validate (the node calls it through the PLT) and passes
 * every other body on unchanged. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tern/validate.h>

typedef int (*validate_fn)(const ProtobufCMessage *, int64_t, tern_violations *);

static const char *case_id(const ProtobufCMessage *msg)
{
	const ProtobufCFieldDescriptor *f =
	    protobuf_c_message_descriptor_get_field_by_name(msg->descriptor, "case_id");

	if (f == NULL || f->type != PROTOBUF_C_TYPE_STRING || f->label == PROTOBUF_C_LABEL_REPEATED)
		return NULL;
	return *(const char *const *)((const char *)msg + f->offset);
}

int tern_validate(const ProtobufCMessage *msg, int64_t now_ms, tern_violations *out)
{
	static validate_fn real;
	const char *poison = getenv("TERN_POISON_CASE"), *id;

	if (real == NULL && (real = (validate_fn)dlsym(RTLD_NEXT, "tern_validate")) == NULL)
		_exit(71);
	if (msg && poison && poison[0] && (id = case_id(msg)) && strcmp(id, poison) == 0)
		_exit(70); /* dies mid-turn: nothing of the turn is committed */
	return real(msg, now_ms, out);
}
