/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tables identifiers are checked against (ICAO 9303 issuer codes, ISO 3166-1 alpha-2
 * countries) and the check characters of cn_rid (ISO 7064 MOD 11-2), cn_uscc (GB 32100) and the
 * MRZ (ICAO 9303 7-3-1), for the parsers (ident.c) and the synthesisers (ident_synth.c).
 */
#include <string.h>

#include "ident_internal.h"

/* GB 32100-2015: the 31-character alphabet (no I, O, S, V, Z) and the weights 3^i mod 31. */
const char ident_uscc_alphabet[32] = "0123456789ABCDEFGHJKLMNPQRTUWXY";
static const unsigned uscc_weights[17] = {1,  3,  9,  27, 19, 26, 16, 17, 20,
                                          29, 25, 13, 8,  24, 10, 30, 28};
/* ISO 7064 MOD 11-2 weights 2^(17-i) mod 11 for the 17 digits of a cn_rid. */
static const unsigned rid_weights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};

/* ICAO Doc 9303 Part 3 (8th edition, 2021), section 5 "Codes for nationality, place of birth,
 * location of issuing State/authority and other purposes": the three-letter codes of
 * ISO 3166-1 alpha-3 (249 codes, as in Debian iso-codes 4.15) plus the codes ICAO assigns
 * itself: D (Germany, canonical DEU), EUE (European Union), GBD GBN GBO GBP GBS (British
 * nationality classes), RKS (Kosovo), UNA UNK UNO (United Nations), XBA XCC XCE XCO XDC XEC
 * XES XIM XMP XOM XPO (international organisations), XXA XXB XXC XXX (stateless, refugee,
 * unspecified), and UTO, the fictional state of the Doc 9303 specimens. Sorted by code for
 * binary search; a code is spelt canonical in keys, so D and DEU key alike. */
struct icao_code {
    char code[4];
    char canonical[4];
};

static const struct icao_code icao_codes[] = {
    {"ABW", "ABW"}, {"AFG", "AFG"}, {"AGO", "AGO"}, {"AIA", "AIA"}, {"ALA", "ALA"}, {"ALB", "ALB"},
    {"AND", "AND"}, {"ARE", "ARE"}, {"ARG", "ARG"}, {"ARM", "ARM"}, {"ASM", "ASM"}, {"ATA", "ATA"},
    {"ATF", "ATF"}, {"ATG", "ATG"}, {"AUS", "AUS"}, {"AUT", "AUT"}, {"AZE", "AZE"}, {"BDI", "BDI"},
    {"BEL", "BEL"}, {"BEN", "BEN"}, {"BES", "BES"}, {"BFA", "BFA"}, {"BGD", "BGD"}, {"BGR", "BGR"},
    {"BHR", "BHR"}, {"BHS", "BHS"}, {"BIH", "BIH"}, {"BLM", "BLM"}, {"BLR", "BLR"}, {"BLZ", "BLZ"},
    {"BMU", "BMU"}, {"BOL", "BOL"}, {"BRA", "BRA"}, {"BRB", "BRB"}, {"BRN", "BRN"}, {"BTN", "BTN"},
    {"BVT", "BVT"}, {"BWA", "BWA"}, {"CAF", "CAF"}, {"CAN", "CAN"}, {"CCK", "CCK"}, {"CHE", "CHE"},
    {"CHL", "CHL"}, {"CHN", "CHN"}, {"CIV", "CIV"}, {"CMR", "CMR"}, {"COD", "COD"}, {"COG", "COG"},
    {"COK", "COK"}, {"COL", "COL"}, {"COM", "COM"}, {"CPV", "CPV"}, {"CRI", "CRI"}, {"CUB", "CUB"},
    {"CUW", "CUW"}, {"CXR", "CXR"}, {"CYM", "CYM"}, {"CYP", "CYP"}, {"CZE", "CZE"}, {"D", "DEU"},
    {"DEU", "DEU"}, {"DJI", "DJI"}, {"DMA", "DMA"}, {"DNK", "DNK"}, {"DOM", "DOM"}, {"DZA", "DZA"},
    {"ECU", "ECU"}, {"EGY", "EGY"}, {"ERI", "ERI"}, {"ESH", "ESH"}, {"ESP", "ESP"}, {"EST", "EST"},
    {"ETH", "ETH"}, {"EUE", "EUE"}, {"FIN", "FIN"}, {"FJI", "FJI"}, {"FLK", "FLK"}, {"FRA", "FRA"},
    {"FRO", "FRO"}, {"FSM", "FSM"}, {"GAB", "GAB"}, {"GBD", "GBD"}, {"GBN", "GBN"}, {"GBO", "GBO"},
    {"GBP", "GBP"}, {"GBR", "GBR"}, {"GBS", "GBS"}, {"GEO", "GEO"}, {"GGY", "GGY"}, {"GHA", "GHA"},
    {"GIB", "GIB"}, {"GIN", "GIN"}, {"GLP", "GLP"}, {"GMB", "GMB"}, {"GNB", "GNB"}, {"GNQ", "GNQ"},
    {"GRC", "GRC"}, {"GRD", "GRD"}, {"GRL", "GRL"}, {"GTM", "GTM"}, {"GUF", "GUF"}, {"GUM", "GUM"},
    {"GUY", "GUY"}, {"HKG", "HKG"}, {"HMD", "HMD"}, {"HND", "HND"}, {"HRV", "HRV"}, {"HTI", "HTI"},
    {"HUN", "HUN"}, {"IDN", "IDN"}, {"IMN", "IMN"}, {"IND", "IND"}, {"IOT", "IOT"}, {"IRL", "IRL"},
    {"IRN", "IRN"}, {"IRQ", "IRQ"}, {"ISL", "ISL"}, {"ISR", "ISR"}, {"ITA", "ITA"}, {"JAM", "JAM"},
    {"JEY", "JEY"}, {"JOR", "JOR"}, {"JPN", "JPN"}, {"KAZ", "KAZ"}, {"KEN", "KEN"}, {"KGZ", "KGZ"},
    {"KHM", "KHM"}, {"KIR", "KIR"}, {"KNA", "KNA"}, {"KOR", "KOR"}, {"KWT", "KWT"}, {"LAO", "LAO"},
    {"LBN", "LBN"}, {"LBR", "LBR"}, {"LBY", "LBY"}, {"LCA", "LCA"}, {"LIE", "LIE"}, {"LKA", "LKA"},
    {"LSO", "LSO"}, {"LTU", "LTU"}, {"LUX", "LUX"}, {"LVA", "LVA"}, {"MAC", "MAC"}, {"MAF", "MAF"},
    {"MAR", "MAR"}, {"MCO", "MCO"}, {"MDA", "MDA"}, {"MDG", "MDG"}, {"MDV", "MDV"}, {"MEX", "MEX"},
    {"MHL", "MHL"}, {"MKD", "MKD"}, {"MLI", "MLI"}, {"MLT", "MLT"}, {"MMR", "MMR"}, {"MNE", "MNE"},
    {"MNG", "MNG"}, {"MNP", "MNP"}, {"MOZ", "MOZ"}, {"MRT", "MRT"}, {"MSR", "MSR"}, {"MTQ", "MTQ"},
    {"MUS", "MUS"}, {"MWI", "MWI"}, {"MYS", "MYS"}, {"MYT", "MYT"}, {"NAM", "NAM"}, {"NCL", "NCL"},
    {"NER", "NER"}, {"NFK", "NFK"}, {"NGA", "NGA"}, {"NIC", "NIC"}, {"NIU", "NIU"}, {"NLD", "NLD"},
    {"NOR", "NOR"}, {"NPL", "NPL"}, {"NRU", "NRU"}, {"NZL", "NZL"}, {"OMN", "OMN"}, {"PAK", "PAK"},
    {"PAN", "PAN"}, {"PCN", "PCN"}, {"PER", "PER"}, {"PHL", "PHL"}, {"PLW", "PLW"}, {"PNG", "PNG"},
    {"POL", "POL"}, {"PRI", "PRI"}, {"PRK", "PRK"}, {"PRT", "PRT"}, {"PRY", "PRY"}, {"PSE", "PSE"},
    {"PYF", "PYF"}, {"QAT", "QAT"}, {"REU", "REU"}, {"RKS", "RKS"}, {"ROU", "ROU"}, {"RUS", "RUS"},
    {"RWA", "RWA"}, {"SAU", "SAU"}, {"SDN", "SDN"}, {"SEN", "SEN"}, {"SGP", "SGP"}, {"SGS", "SGS"},
    {"SHN", "SHN"}, {"SJM", "SJM"}, {"SLB", "SLB"}, {"SLE", "SLE"}, {"SLV", "SLV"}, {"SMR", "SMR"},
    {"SOM", "SOM"}, {"SPM", "SPM"}, {"SRB", "SRB"}, {"SSD", "SSD"}, {"STP", "STP"}, {"SUR", "SUR"},
    {"SVK", "SVK"}, {"SVN", "SVN"}, {"SWE", "SWE"}, {"SWZ", "SWZ"}, {"SXM", "SXM"}, {"SYC", "SYC"},
    {"SYR", "SYR"}, {"TCA", "TCA"}, {"TCD", "TCD"}, {"TGO", "TGO"}, {"THA", "THA"}, {"TJK", "TJK"},
    {"TKL", "TKL"}, {"TKM", "TKM"}, {"TLS", "TLS"}, {"TON", "TON"}, {"TTO", "TTO"}, {"TUN", "TUN"},
    {"TUR", "TUR"}, {"TUV", "TUV"}, {"TWN", "TWN"}, {"TZA", "TZA"}, {"UGA", "UGA"}, {"UKR", "UKR"},
    {"UMI", "UMI"}, {"UNA", "UNA"}, {"UNK", "UNK"}, {"UNO", "UNO"}, {"URY", "URY"}, {"USA", "USA"},
    {"UTO", "UTO"}, {"UZB", "UZB"}, {"VAT", "VAT"}, {"VCT", "VCT"}, {"VEN", "VEN"}, {"VGB", "VGB"},
    {"VIR", "VIR"}, {"VNM", "VNM"}, {"VUT", "VUT"}, {"WLF", "WLF"}, {"WSM", "WSM"}, {"XBA", "XBA"},
    {"XCC", "XCC"}, {"XCE", "XCE"}, {"XCO", "XCO"}, {"XDC", "XDC"}, {"XEC", "XEC"}, {"XES", "XES"},
    {"XIM", "XIM"}, {"XMP", "XMP"}, {"XOM", "XOM"}, {"XPO", "XPO"}, {"XXA", "XXA"}, {"XXB", "XXB"},
    {"XXC", "XXC"}, {"XXX", "XXX"}, {"YEM", "YEM"}, {"ZAF", "ZAF"}, {"ZMB", "ZMB"}, {"ZWE", "ZWE"},
};

/* ISO 3166-1 alpha-2, all 249 officially assigned codes (Debian iso-codes 4.15), sorted; the
 * country of a national_id. */
static const char iso_alpha2[][3] = {
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
};

/* The canonical spelling of an ICAO 9303 issuer code (upper case, 1-3 letters), or NULL. */
const char *
ident_icao_canonical(const char *code)
{
    size_t lo = 0, hi = sizeof(icao_codes) / sizeof(icao_codes[0]);

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(code, icao_codes[mid].code);

        if (c == 0) {
            return icao_codes[mid].canonical;
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return NULL;
}

/* 1 when cc (two upper-case letters and a NUL) is an assigned ISO 3166-1 alpha-2 code. */
int
ident_iso_alpha2_known(const char *cc)
{
    size_t lo = 0, hi = sizeof(iso_alpha2) / sizeof(iso_alpha2[0]);

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(cc, iso_alpha2[mid]);

        if (c == 0) {
            return 1;
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Check characters */

char
ident_rid_check(const char *s)
{
    unsigned sum = 0, v;

    for (int i = 0; i < 17; i++) {
        sum += (unsigned)(s[i] - '0') * rid_weights[i];
    }
    v = (12 - sum % 11) % 11;
    return v == 10 ? 'X' : (char)('0' + v);
}

int
ident_uscc_index(int c)
{
    const char *p;

    if (c == '\0') {
        return -1;
    }
    p = strchr(ident_uscc_alphabet, c);
    return p == NULL ? -1 : (int)(p - ident_uscc_alphabet);
}

/* s[0..17) must be in the alphabet. */
char
ident_uscc_check(const char *s)
{
    unsigned sum = 0, c;

    for (int i = 0; i < 17; i++) {
        sum += (unsigned)ident_uscc_index(s[i]) * uscc_weights[i];
    }
    c = 31 - sum % 31;
    return ident_uscc_alphabet[c == 31 ? 0 : c];
}

/* ICAO 9303 Part 3: digits, A-Z = 10..35, '<' = 0, weights 7-3-1, sum mod 10. */
static int
mrz_value(char c)
{
    if (is_digit(c)) {
        return c - '0';
    }
    if (is_upper(c)) {
        return c - 'A' + 10;
    }
    return 0;
}

char
ident_mrz_check(const char *s, size_t n)
{
    static const int w[3] = {7, 3, 1};
    int sum = 0;

    for (size_t i = 0; i < n; i++) {
        sum += mrz_value(s[i]) * w[i % 3];
    }
    return (char)('0' + sum % 10);
}
