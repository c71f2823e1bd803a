// null_milter.cpp — a milter that does no work, on libmilter like postwarden-milter: every event
// is answered "continue" (header fields and body chunks not at all, as postwarden does over a
// unix socket), end of message "accept", nothing added. Behind Postfix it measures what Postfix
// and libmilter cost for any milter, so that milter.sh can tell that share apart from
// postwarden's own work (docs/benchmarks.md, Milter).
//
//   null_milter unix:/path      (or inet:PORT@127.0.0.1; runs until SIGTERM)
#include <libmilter/mfapi.h>

#include <cstdio>

namespace {

extern "C" {

sfsistat on_negotiate(SMFICTX*, unsigned long f0, unsigned long f1, unsigned long, unsigned long,
                      unsigned long* pf0, unsigned long* pf1, unsigned long* pf2,
                      unsigned long* pf3) {
    *pf0 = f0 & SMFIF_ADDHDRS;
    *pf1 = f1 & (SMFIP_NR_HDR | SMFIP_NR_BODY);
    *pf2 = *pf3 = 0;
    return SMFIS_CONTINUE;
}

sfsistat on_continue(SMFICTX*) {
    return SMFIS_CONTINUE;
}
sfsistat on_connect(SMFICTX*, char*, _SOCK_ADDR*) {
    return SMFIS_CONTINUE;
}
sfsistat on_envelope(SMFICTX*, char**) {
    return SMFIS_CONTINUE;
}
sfsistat on_helo(SMFICTX*, char*) {
    return SMFIS_CONTINUE;
}
sfsistat on_header(SMFICTX*, char*, char*) {
    return SMFIS_NOREPLY;
}
sfsistat on_body(SMFICTX*, unsigned char*, size_t) {
    return SMFIS_NOREPLY;
}
sfsistat on_eom(SMFICTX*) {
    return SMFIS_ACCEPT;
}

}  // extern "C"

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: null_milter unix:/path|inet:PORT@127.0.0.1\n");
        return 2;
    }
    static char name[] = "null_milter";
    smfiDesc desc{};
    desc.xxfi_name = name;
    desc.xxfi_version = SMFI_VERSION;
    desc.xxfi_flags = SMFIF_ADDHDRS;
    desc.xxfi_connect = on_connect;
    desc.xxfi_helo = on_helo;
    desc.xxfi_envfrom = on_envelope;
    desc.xxfi_envrcpt = on_envelope;
    desc.xxfi_header = on_header;
    desc.xxfi_eoh = on_continue;
    desc.xxfi_body = on_body;
    desc.xxfi_eom = on_eom;
    desc.xxfi_abort = on_continue;
    desc.xxfi_close = on_continue;
    desc.xxfi_negotiate = on_negotiate;
    if (smfi_setconn(argv[1]) != MI_SUCCESS || smfi_register(desc) != MI_SUCCESS ||
        smfi_opensocket(1) != MI_SUCCESS) {
        std::fprintf(stderr, "null_milter: cannot listen on %s\n", argv[1]);
        return 1;
    }
    return smfi_main() == MI_SUCCESS ? 0 : 1;
}
