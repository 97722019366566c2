# warms up for 3 s, then serves its version
mkdir -p /www
echo v1 >/www/index.html
sleep 3
exec httpd -f -p 8000 -h /www
