/* Codes, dates and times: ISO 3166-1 alpha-3 countries, calendar dates and
 * RFC 3339 date-times (tern/validate.h), and what validate.c shares of them. */
#include <stdlib.h>
#include <string.h>

#include <tern/validate.h>

#include "validate_int.h"

/* ISO 3166-1 alpha-3, officially assigned codes (249), sorted for bsearch. */
static const char iso3166_alpha3[][4] = {
    "ABW", "AFG", "AGO", "AIA", "ALA", "ALB", "AND", "ARE", "ARG", "ARM", "ASM", "ATA", "ATF",
    "ATG", "AUS", "AUT", "AZE", "BDI", "BEL", "BEN", "BES", "BFA", "BGD", "BGR", "BHR", "BHS",
    "BIH", "BLM", "BLR", "BLZ", "BMU", "BOL", "BRA", "BRB", "BRN", "BTN", "BVT", "BWA", "CAF",
    "CAN", "CCK", "CHE", "CHL", "CHN", "CIV", "CMR", "COD", "COG", "COK", "COL", "COM", "CPV",
    "CRI", "CUB", "CUW", "CXR", "CYM", "CYP", "CZE", "DEU", "DJI", "DMA", "DNK", "DOM", "DZA",
    "ECU", "EGY", "ERI", "ESH", "ESP", "EST", "ETH", "FIN", "FJI", "FLK", "FRA", "FRO", "FSM",
    "GAB", "GBR", "GEO", "GGY", "GHA", "GIB", "GIN", "GLP", "GMB", "GNB", "GNQ", "GRC", "GRD",
    "GRL", "GTM", "GUF", "GUM", "GUY", "HKG", "HMD", "HND", "HRV", "HTI", "HUN", "IDN", "IMN",
    "IND", "IOT", "IRL", "IRN", "IRQ", "ISL", "ISR", "ITA", "JAM", "JEY", "JOR", "JPN", "KAZ",
    "KEN", "KGZ", "KHM", "KIR", "KNA", "KOR", "KWT", "LAO", "LBN", "LBR", "LBY", "LCA", "LIE",
    "LKA", "LSO", "LTU", "LUX", "LVA", "MAC", "MAF", "MAR", "MCO", "MDA", "MDG", "MDV", "MEX",
    "MHL", "MKD", "MLI", "MLT", "MMR", "MNE", "MNG", "MNP", "MOZ", "MRT", "MSR", "MTQ", "MUS",
    "MWI", "MYS", "MYT", "NAM", "NCL", "NER", "NFK", "NGA", "NIC", "NIU", "NLD", "NOR", "NPL",
    "NRU", "NZL", "OMN", "PAK", "PAN", "PCN", "PER", "PHL", "PLW", "PNG", "POL", "PRI", "PRK",
    "PRT", "PRY", "PSE", "PYF", "QAT", "REU", "ROU", "RUS", "RWA", "SAU", "SDN", "SEN", "SGP",
    "SGS", "SHN", "SJM", "SLB", "SLE", "SLV", "SMR", "SOM", "SPM", "SRB", "SSD", "STP", "SUR",
    "SVK", "SVN", "SWE", "SWZ", "SXM", "SYC", "SYR", "TCA", "TCD", "TGO", "THA", "TJK", "TKL",
    "TKM", "TLS", "TON", "TTO", "TUN", "TUR", "TUV", "TWN", "TZA", "UGA", "UKR", "UMI", "URY",
    "USA", "UZB", "VAT", "VCT", "VEN", "VGB", "VIR", "VNM", "VUT", "WLF", "WSM", "YEM", "ZAF",
    "ZMB", "ZWE",
};

static int cmp_code(const void *a, const void *b)
{
	return memcmp(a, b, 3);
}

int tv_alpha3_shape(const char *s)
{
	return strlen(s) == 3 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z' &&
	       s[2] >= 'A' && s[2] <= 'Z';
}

int tern_country_valid(const char *s, int icao)
{
	if (s == NULL || !tv_alpha3_shape(s))
		return 0;
	/* ICAO Doc 9303: XXA stateless person, XXB refugee (1951 Convention),
	 * XXC refugee (other), XXX nationality unspecified. */
	if (icao && (strcmp(s, "XXA") == 0 || strcmp(s, "XXB") == 0 || strcmp(s, "XXC") == 0 ||
	             strcmp(s, "XXX") == 0))
		return 1;
	return bsearch(s, iso3166_alpha3, sizeof(iso3166_alpha3) / sizeof(iso3166_alpha3[0]),
	               sizeof(iso3166_alpha3[0]), cmp_code) != NULL;
}

int tv_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Days since 1970-01-01 (H. Hinnant's days_from_civil). */
int64_t tv_days_from_civil(int64_t y, int64_t m, int64_t d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
	static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 ? 28 + leap : dim[m - 1];
}

static int digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!tv_is_digit(s[i]))
			return 0;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 1;
}

/* The date at the start of s (exactly 10 characters are looked at). */
static int date_prefix(const char *s, int64_t *days)
{
	int y, m, d;

	if (strnlen(s, 10) < 10 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &m) ||
	    s[7] != '-' || !digits(s + 8, 2, &d))
		return 0;
	if (y < 1 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
		return 0;
	if (days)
		*days = tv_days_from_civil(y, m, d);
	return 1;
}

int tern_date_parse(const char *s, int64_t *days)
{
	return s != NULL && strlen(s) == 10 && date_prefix(s, days);
}

int tern_datetime_parse(const char *s, int64_t *ms)
{
	int64_t days, frac_ms = 0, off_min = 0;
	int h, mi, sec, oh, om;
	const char *p;

	if (s == NULL || !date_prefix(s, &days) || (s[10] != 'T' && s[10] != 't'))
		return 0;
	p = s + 11;
	if (strnlen(p, 8) < 8 || !digits(p, 2, &h) || p[2] != ':' || !digits(p + 3, 2, &mi) ||
	    p[5] != ':' || !digits(p + 6, 2, &sec))
		return 0;
	/* Second 60 is refused: RFC 3339 allows it only at a real leap second, none
	 * is scheduled, and an instant that cannot be told apart from the next
	 * minute's first second is more likely a typing error than a flight time. */
	if (h > 23 || mi > 59 || sec > 59)
		return 0;
	p += 8;
	if (*p == '.') {
		int n = 0;

		for (p++; tv_is_digit(*p); p++, n++)
			if (n < 3)
				frac_ms = frac_ms * 10 + (*p - '0');
		if (n == 0)
			return 0;
		for (; n < 3; n++)
			frac_ms *= 10;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		if (strnlen(p + 1, 5) < 5 || !digits(p + 1, 2, &oh) || p[3] != ':' ||
		    !digits(p + 4, 2, &om) || oh > 23 || om > 59)
			return 0;
		off_min = (*p == '-' ? -1 : 1) * (oh * 60 + om);
		p += 6;
	} else {
		return 0;
	}
	if (*p != '\0')
		return 0;
	if (ms)
		*ms = days * MS_PER_DAY + ((int64_t)h * 3600 + mi * 60 + sec) * 1000 + frac_ms -
		      off_min * 60000;
	return 1;
}

/* ------------------------------------------------------------ violations */
