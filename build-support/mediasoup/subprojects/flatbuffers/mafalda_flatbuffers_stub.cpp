// Mafalda: the flatbuffers runtime the worker uses is header-only; this file
// only gives the `flatbuffers_lib` static library a member (docs/building.md).
#include <flatbuffers/base.h>

extern "C" int mafalda_flatbuffers_version_major()
{
	return FLATBUFFERS_VERSION_MAJOR;
}
