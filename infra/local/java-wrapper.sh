#!/bin/sh
# Installed by infra/local/install.sh as LocalStack's "Java 21" (<FILESYSTEM_ROOT>/var/lib/
# localstack/lib/java/21/bin/java). Runs the system JDK (17+, enough for DynamoDB Local 3.x)
# with the loopback bind() shim, so DynamoDB Local never listens on a public interface.
LD_PRELOAD="@SHIM@${LD_PRELOAD:+:$LD_PRELOAD}" exec "@REAL_JAVA@" -Djava.net.preferIPv4Stack=true "$@"
