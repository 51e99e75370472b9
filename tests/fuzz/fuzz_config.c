/* Configuration files, as node.conf and as broker.conf. */
#include <tern/config.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = fuzz_tmpfile(data, size);

	for (int kind = TERN_CONFIG_NODE; kind <= TERN_CONFIG_BROKER; kind++) {
		tern_config *cfg = NULL;
		tern_config_load(path, kind, &cfg);
		if (cfg)
			tern_config_errors(cfg);
		tern_config_free(&cfg);
	}
	return 0;
}
