/* Standard input to standard output: a filter that upper-cases its input,
 * numbers its lines and reports byte, line and word counts at the end. */
#include <ctype.h>
#include <stdio.h>

int main(void) {
    char line[4096];
    unsigned long lines = 0, words = 0, bytes = 0;
    while (fgets(line, sizeof line, stdin)) {
        int in_word = 0;
        printf("%4lu: ", ++lines);
        for (char *p = line; *p; p++) {
            bytes++;
            if (isspace((unsigned char)*p)) {
                in_word = 0;
            } else if (!in_word) {
                in_word = 1;
                words++;
            }
            putchar(toupper((unsigned char)*p));
        }
    }
    if (ferror(stdin)) return 1;
    printf("lines=%lu words=%lu bytes=%lu\n", lines, words, bytes);
    return 0;
}
