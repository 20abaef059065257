/* noabi.c: a shared object without the pipepool_app descriptor. */
int	not_an_app(void);

int
not_an_app(void)
{
	return 0;
}
