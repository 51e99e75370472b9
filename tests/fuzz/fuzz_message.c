/* Business messages in their binary form: the first byte picks the type. */
#include <tern/msgtype.h>
#include <tern/validate.h>

#include "fuzz.h"
#include "pbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const tern_msgtype *t = tern_msgtype_all();
	ProtobufCMessage *m = NULL;
	tern_violations v;
	size_t n = 0;

	if (size < 1)
		return 0;
	while (t[n].name)
		n++;
	t += data[0] % n;
	if (tern_pb_unpack_canonical(t->desc, data + 1, size - 1, size, &m) == 0)
		tern_validate(m, 1795000000000, &v);
	tern_pb_free(&m);
	return 0;
}
