/* Hop frames from a peer: decode, bounded, never trusted. */
#include "fuzz.h"
#include "hop.h"
#include "pbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Tern__V1__Frame *f = NULL;

	if (tern_hop_decode(data, size, 1u << 20, &f) == 0)
		tern_pb_free((ProtobufCMessage **)&f);
	return 0;
}
