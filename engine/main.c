#include <stdio.h>

int main(void)
{
    printf("explorer %s\n", EXPLORER_VERSION);
    return 0;
}
