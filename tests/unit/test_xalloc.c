/* xalloc: the string helpers copy exactly and terminate. */
#include "check.h"
#include "core/xalloc.h"

#include <stdlib.h>

int main(void)
{
    char *s = xstrndup("abcdef", 3);
    CHECK_STR_EQ(s, "abc");
    free(s);
    s = xstrdup("");
    CHECK_STR_EQ(s, "");
    free(s);
    int *z = xcalloc(4, sizeof(int));
    CHECK_INT_EQ(z[3], 0);
    free(z);
    return CHECK_DONE();
}
